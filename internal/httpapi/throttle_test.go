package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestGuessingIsThrottledGoodKeysAreNot: past an app's budget of failed
// verifies, guesses get 429 with Retry-After while a good key keeps
// answering VALID, and another app's budget is untouched.
func TestGuessingIsThrottledGoodKeysAreNot(t *testing.T) {
	svc := servicetest.Start(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.VerifyFailureRate, c.VerifyFailureBurst = 0.5, 20
	}))
	ctx := context.Background()
	owner, err := client.New(svc.URL, svc.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	appA, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "a", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	appB, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "b", Kind: client.KindCloudFunction})
	if err != nil {
		t.Fatal(err)
	}
	good, err := owner.CreateKey(ctx, appA.ID, client.CreateKeyRequest{Name: "good", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	verA, _ := client.New(svc.URL, appA.VerifierToken)
	verB, _ := client.New(svc.URL, appB.VerifierToken)

	answered, throttled := 0, 0
	for i := 0; i < 60; i++ {
		guess, _ := apikey.Generate()
		_, err := verA.Verify(ctx, guess)
		var apiErr *client.APIError
		switch {
		case err == nil:
			answered++
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
			throttled++
			if apiErr.Code != "rate_limited" || apiErr.RetryAfter < time.Second {
				t.Fatalf("429 = %+v; want code rate_limited and a Retry-After of at least 1s", apiErr)
			}
		default:
			t.Fatalf("guess %d: %v", i, err)
		}
		if i%10 == 0 {
			if v, err := verA.Verify(ctx, good.PlainKey); err != nil || v.Code != client.VerifyValid {
				t.Fatalf("good key during guessing = %+v, %v", v, err)
			}
		}
	}
	// The burst of 20 is answered; refills at 0.5/s add at most a couple.
	if answered < 20 || answered > 25 || throttled < 35 {
		t.Fatalf("answered %d guesses, throttled %d; want about 20 answered, the rest 429", answered, throttled)
	}
	guess, _ := apikey.Generate()
	if v, err := verB.Verify(ctx, guess); err != nil || v.Code != client.VerifyNotFound {
		t.Fatalf("another app's guess = %+v, %v; its budget is its own", v, err)
	}
	metrics, err := owner.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(metrics, "appkeys_verify_throttled_total ") {
		t.Fatal("no appkeys_verify_throttled_total in /metrics")
	}
}

func containsLine(text, prefix string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}
