package configs

import (
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/appkeys/appkeys/internal/apikey"
)

// The scanner rules for our keys: configs/gitleaks.toml, configs/trufflehog.yaml
// and the regular expression docs/secret-scanning.md gives. The real gitleaks
// runs over the same fixture in gitleaks_test.go.

// fixtureLine is one line of the scanner fixture tree and the keys a scanner
// must report on it: none for a near-miss.
type fixtureLine struct {
	file, text string
	want       []string
	why        string
	// encoded: the key is there only base64- or percent-encoded, which
	// gitleaks decodes before matching and the bare regex does not.
	encoded bool
}

// scannerFixture builds the fixture from keys generated now, so no
// live-looking key is committed for other scanners to trip on.
func scannerFixture(t *testing.T) []fixtureLine {
	t.Helper()
	key := func() string {
		k, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := make([]string, 15)
	for i := range k {
		k[i] = key()
	}
	short := k[12][:apikey.Len-1]
	// A key's checksum is CRC32 in 6 base62 digits, so it starts with 0-4; one
	// that starts otherwise is refused by the rule, one that does not is not.
	badStart := wrongChecksum(t, k[9], '9')
	badInRange := wrongChecksum(t, k[10], '0', '1', '2', '3', '4')
	placeholder := "cak_" + strings.Repeat("x", apikey.BodyLen) + "0xxxxx"
	line := func(file, text, why string, want ...string) fixtureLine {
		return fixtureLine{file: file, text: text, why: why, want: want}
	}
	encodedLine := func(file, text, why string, want ...string) fixtureLine {
		return fixtureLine{file: file, text: text, why: why, want: want, encoded: true}
	}
	return []fixtureLine{
		line(".env", "# appkeys for the orders function", "comment"),
		line(".env", "APPKEYS_KEY="+k[0], ".env assignment", k[0]),
		line(".env", `APPKEYS_QUOTED_KEY="`+k[1]+`"`, ".env, quoted", k[1]),
		line(".env", "APPKEYS_SHORT_KEY="+short, "one character too few"),
		line(".env", "APPKEYS_TRUNCATED=cak_"+apikey.Random(20), "cak_ and 20 characters"),
		line(".env", "STRIPE_KEY=sk_live_"+apikey.Random(apikey.Len-len("cak_")), "another prefix"),
		line(".env", "APPKEYS_GLUED="+k[11]+"Q", "a character glued on the end"),
		encodedLine(".env", "APPKEYS_KEY_B64="+base64.StdEncoding.EncodeToString([]byte(k[13])), "base64-encoded", k[13]),
		line("config.yaml", "appkeys:", ""),
		line("config.yaml", "  url: https://api.example.com/v1/orders?api_key="+k[2]+"&page=2", "URL query", k[2]),
		line("config.yaml", `  key: "`+k[3]+`"`, "YAML string", k[3]),
		line("config.yaml", "  rotation: ["+k[4]+", "+k[5]+"]", "two on one line", k[4], k[5]),
		line("config.yaml", "  dashed: cak-"+k[11][4:], "cak- instead of cak_"),
		line("config.yaml", "  upper: CAK_"+k[11][4:], "CAK_ in capitals"),
		line("config.yaml", "  prefixed: legacy_"+k[11], "inside a longer word"),
		encodedLine("config.yaml", "  redirect: /login?next=%2Fkeys%3Fkey%3D"+k[14]+"%26x", "percent-encoded", k[14]),
		line("secrets.json", "{", ""),
		line("secrets.json", `  "appkeys": {"key": "`+k[6]+`",`, "JSON string", k[6]),
		line("secrets.json", `    "badChecksum": "`+badStart+`",`, "checksum not starting 0-4"),
		line("secrets.json", `    "placeholder": "`+placeholder+`"},`, "placeholder below the entropy floor"),
		// The known limit of \b: an escaped newline glues an n to the key.
		line("secrets.json", `  "log": "loaded\n`+k[11]+`"`, "after an escaped newline"),
		line("secrets.json", "}", ""),
		line("deploy.sh", "#!/bin/sh", ""),
		line("deploy.sh", "export APPKEYS_KEY='"+k[7]+"'", "shell export", k[7]),
		line("deploy.sh", `curl -fsS -H "Authorization: Bearer `+k[8]+`" https://api.example.com/v1/orders`, "shell header", k[8]),
		// The known limit: a wrong checksum that starts 0-4 passes the rule;
		// only a scanner that computes the checksum drops it.
		line("deploy.sh", `curl -fsS -H "X-API-Key: `+badInRange+`" https://api.example.com/`, "wrong checksum starting 0-4", badInRange),
		line("deploy.sh", `echo "$APPKEYS_KEY" | appkeys keys lookup`, "a variable, not a key"),
	}
}

// wrongChecksum returns k with its checksum's first character replaced by
// the first of choices that differs from it: a malformed key.
func wrongChecksum(t *testing.T, k string, choices ...byte) string {
	t.Helper()
	i := apikey.Len - apikey.ChecksumLen
	for _, c := range choices {
		if c != k[i] {
			bad := k[:i] + string(c) + k[i+1:]
			if apikey.Parse(bad) == nil {
				t.Fatalf("changed checksum still parses")
			}
			return bad
		}
	}
	t.Fatal("no other character to choose")
	return ""
}

// writeFixture writes the fixture's files into dir and returns the keys
// wanted per place, as "file:line:key".
func writeFixture(t *testing.T, dir string, lines []fixtureLine) (want []string, why map[string]string) {
	t.Helper()
	files := map[string][]string{}
	why = map[string]string{}
	for _, l := range lines {
		files[l.file] = append(files[l.file], l.text)
		for _, k := range l.want {
			at := fmt.Sprintf("%s:%d:%s", l.file, len(files[l.file]), k)
			want = append(want, at)
			why[at] = l.why
		}
		why[fmt.Sprintf("%s:%d", l.file, len(files[l.file]))] = l.why
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(text, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	return want, why
}

// shannon is the entropy in bits per character that gitleaks and TruffleHog
// compare with a rule's entropy.
func shannon(s string) float64 {
	counts := map[rune]int{}
	for _, r := range s {
		counts[r]++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(len(s))
		h -= p * math.Log2(p)
	}
	return h
}

// gitleaksRule is our rule as configs/gitleaks.toml states it. The real
// gitleaks parses the file in gitleaks_test.go; here only our fields are read.
func gitleaksRule(t *testing.T) (regex, keywords, entropy string) {
	t.Helper()
	b, err := os.ReadFile("gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + ` = (.+)$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("gitleaks.toml: no %s", name)
		}
		return m[1]
	}
	return strings.TrimSuffix(strings.TrimPrefix(field("regex"), "'''"), "'''"), field("keywords"), field("entropy")
}

// truffleHogConfig is configs/trufflehog.yaml, with the fields of TruffleHog's
// CustomRegex message (proto/custom_detectors.proto); an unknown one fails.
type truffleHogConfig struct {
	Detectors []struct {
		Name                  string            `yaml:"name"`
		Description           string            `yaml:"description"`
		Keywords              []string          `yaml:"keywords"`
		Regex                 map[string]string `yaml:"regex"`
		Verify                []map[string]any  `yaml:"verify"`
		Entropy               float64           `yaml:"entropy"`
		ExcludeWords          []string          `yaml:"exclude_words"`
		ExcludeRegexesMatch   []string          `yaml:"exclude_regexes_match"`
		ExcludeRegexesCapture []string          `yaml:"exclude_regexes_capture"`
		PrimaryRegexName      string            `yaml:"primary_regex_name"`
		Validations           map[string]any    `yaml:"validations"`
	} `yaml:"detectors"`
}

func loadTruffleHog(t *testing.T) truffleHogConfig {
	t.Helper()
	f, err := os.Open("trufflehog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c truffleHogConfig
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("trufflehog.yaml: %v", err)
	}
	if len(c.Detectors) != 1 {
		t.Fatalf("trufflehog.yaml: %d detectors, want 1", len(c.Detectors))
	}
	return c
}

// TestTruffleHogDetector runs configs/trufflehog.yaml's detector the way
// TruffleHog v3's custom regex detector does (pkg/custom_detectors): keyword
// prefilter, Go's regexp, the first capture group if any, entropy floor. The
// TruffleHog binary is too big to build in make test. TruffleHog's decoders
// are not emulated: encoded keys are gitleaks' test only.
func TestTruffleHogDetector(t *testing.T) {
	d := loadTruffleHog(t).Detectors[0]
	// TruffleHog's own validation (pkg/custom_detectors/validation.go).
	if d.Name == "" || len(d.Keywords) == 0 || slices.Contains(d.Keywords, "") || len(d.Regex) != 1 {
		t.Fatalf("detector needs a name, keywords and one regex: %+v", d)
	}
	if len(d.Verify) != 0 {
		t.Fatalf("a verify webhook is set; the detector must work without one")
	}
	var re *regexp.Regexp
	for _, r := range d.Regex {
		re = regexp.MustCompile(r)
	}
	lines := scannerFixture(t)
	var got, want []string
	for _, l := range lines {
		for _, k := range l.want {
			if !l.encoded {
				want = append(want, l.text+" -> "+k)
			}
		}
		if !slices.ContainsFunc(d.Keywords, func(kw string) bool {
			return strings.Contains(strings.ToLower(l.text), strings.ToLower(kw))
		}) {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(l.text, -1) {
			secret := m[0]
			if len(m) > 1 {
				secret = m[1]
			}
			if d.Entropy > 0 && shannon(secret) < d.Entropy {
				continue
			}
			got = append(got, l.text+" -> "+secret)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("TruffleHog detector found\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestScannerRulesAgree: gitleaks, TruffleHog and the docs give one regular
// expression, one keyword and one entropy floor, and that expression matches
// every key the key service makes, whole.
func TestScannerRulesAgree(t *testing.T) {
	regex, keywords, entropy := gitleaksRule(t)
	d := loadTruffleHog(t).Detectors[0]
	if d.Regex["key"] != regex {
		t.Errorf("trufflehog.yaml regex %q, gitleaks.toml %q", d.Regex["key"], regex)
	}
	if keywords != `["cak_"]` || !slices.Equal(d.Keywords, []string{"cak_"}) {
		t.Errorf("keywords: gitleaks %s, TruffleHog %q; want cak_ alone", keywords, d.Keywords)
	}
	if entropy != fmt.Sprint(d.Entropy) {
		t.Errorf("entropy: gitleaks %s, TruffleHog %v", entropy, d.Entropy)
	}
	doc, err := os.ReadFile("../docs/secret-scanning.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), regex) {
		t.Errorf("docs/secret-scanning.md does not give the rules' regex %s", regex)
	}

	// Why [0-4]: the largest CRC32 is below 5*62^5.
	if math.MaxUint32 >= 5*math.Pow(62, apikey.ChecksumLen-1) {
		t.Fatal("a CRC32 can start its base62 checksum with 5 or more")
	}
	whole := regexp.MustCompile(`^(?:` + regex + `)$`)
	for range 10000 {
		k, _ := apikey.Generate()
		if !whole.MatchString(k) {
			t.Fatalf("the rules miss a generated key")
		}
		if h := shannon(k); h < d.Entropy {
			t.Fatalf("a generated key measures %.2f bits per character, under the floor %.1f", h, d.Entropy)
		}
		if docChecksum(k[:apikey.Len-apikey.ChecksumLen]) != k[apikey.Len-apikey.ChecksumLen:] {
			t.Fatalf("the checksum algorithm in docs/secret-scanning.md disagrees with internal/apikey")
		}
	}
}

// docChecksum is the checksum as docs/secret-scanning.md describes it, written
// from that text: CRC-32 (IEEE, as zlib) of "cak_" and the 43 characters, in
// 6 base62 digits, most significant first, zero-padded.
func docChecksum(s string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	v := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = digits[v%62]
		v /= 62
	}
	return string(out)
}
