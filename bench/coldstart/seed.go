package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/keyservice"
)

// seed is the one app and its keys in the key service's data directory.
type seed struct {
	app, token string
	keys       []string
	took       time.Duration // seeding time; 0 when reused
}

// seeded returns the seed kept in data/keys.txt, or makes one: the key
// service runs in this process on data while it creates the app and
// o.keys keys through its own CreateKey (every stored hash the one a real
// create writes), then closes, leaving the directory to `appkeys serve`.
func seeded(ctx context.Context, data string, o options) (seed, error) {
	path := filepath.Join(data, "keys.txt")
	if s, err := readSeed(path); err == nil && len(s.keys) >= o.keys {
		s.keys = s.keys[:o.keys]
		fmt.Fprintf(os.Stderr, "reusing %d keys of %s from %s\n", len(s.keys), s.app, path)
		return s, nil
	} else if err == nil {
		return seed{}, fmt.Errorf("%s holds %d keys, fewer than -keys %d: give another -data", path, len(s.keys), o.keys)
	}
	ks, err := keyserver.Start(ctx, keyserver.Config{Addr: "127.0.0.1:0", DataDir: data})
	if err != nil {
		return seed{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Close(cctx)
	}()
	if !ks.Bootstrap.Created {
		return seed{}, fmt.Errorf("%s holds a store but no keys.txt: give an empty or new -data", data)
	}
	svc := ks.Service
	owner, err := svc.Authenticate(ctx, ks.Bootstrap.OwnerToken)
	if err != nil {
		return seed{}, fmt.Errorf("owner token: %w", err)
	}
	start := time.Now()
	created, err := svc.CreateApp(ctx, owner, "coldstart", keyservice.KindCloudFunction)
	if err != nil {
		return seed{}, err
	}
	s := seed{app: created.App.ID, token: created.VerifierToken, keys: make([]string, o.keys)}
	expires := svc.Now().Add(300 * 24 * time.Hour)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, o.seedWorkers)
	for w := range o.seedWorkers {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= o.keys || ctx.Err() != nil {
					return
				}
				kc, err := svc.CreateKey(ctx, owner, s.app, keyservice.CreateKeyRequest{Name: fmt.Sprintf("key-%d", n), ExpiresAt: expires})
				if err != nil {
					errs[w] = fmt.Errorf("create key %d: %w", n, err)
					return
				}
				s.keys[n] = kc.Plain
				if d := done.Add(1); d%20_000 == 0 {
					fmt.Fprintf(os.Stderr, "seeding: %d keys, %v\n", d, time.Since(start).Round(time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return seed{}, err
	}
	s.took = time.Since(start)
	fmt.Fprintf(os.Stderr, "seeded %d keys in %v\n", o.keys, s.took.Round(time.Millisecond))
	return s, writeSeed(path, s)
}

// keys.txt: the app id and its verifier token on the first line, then one
// plain key a line. It is a benchmark's throwaway data (mode 0600).
func writeSeed(path string, s seed) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", s.app, s.token)
	for _, k := range s.keys {
		b.WriteString(k)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func readSeed(path string) (seed, error) {
	f, err := os.Open(path)
	if err != nil {
		return seed{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return seed{}, errors.New("empty keys.txt")
	}
	head := strings.Fields(sc.Text())
	if len(head) != 2 {
		return seed{}, errors.New("keys.txt: bad first line")
	}
	s := seed{app: head[0], token: head[1]}
	for sc.Scan() {
		if k := strings.TrimSpace(sc.Text()); k != "" {
			s.keys = append(s.keys, k)
		}
	}
	return s, sc.Err()
}
