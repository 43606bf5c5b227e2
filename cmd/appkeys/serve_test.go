package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantErr  string
		rate     float64
		burst    int
		lifetime time.Duration
	}{
		{args: nil, rate: 50, burst: 500, lifetime: 365 * 24 * time.Hour},
		{args: []string{"--verify-failure-rate", "2.5", "--verify-failure-burst", "7", "--max-key-lifetime", "90d"}, rate: 2.5, burst: 7, lifetime: 90 * 24 * time.Hour},
		{args: []string{"--max-key-lifetime", "720h"}, rate: 50, burst: 500, lifetime: 720 * time.Hour},
		{args: []string{"--verify-failure-rate", "0"}, wantErr: "--verify-failure-rate"},
		{args: []string{"--verify-failure-rate", "NaN"}, wantErr: "--verify-failure-rate"},
		{args: []string{"--verify-failure-burst", "0"}, wantErr: "--verify-failure-burst"},
		{args: []string{"--max-key-lifetime", "0d"}, wantErr: "--max-key-lifetime"},
		{args: []string{"--max-key-lifetime", "forever"}, wantErr: "--max-key-lifetime"},
		{args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{args: []string{"--tls-cert", "c.pem"}, wantErr: "--tls-key"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var f serveFlags
			cmd := &cobra.Command{}
			f.register(cmd, "127.0.0.1:0")
			cmd.Flags().StringVar(&f.tlsCert, "tls-cert", "", "")
			cmd.Flags().StringVar(&f.tlsKey, "tls-key", "", "")
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.config(io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.VerifyFailureRate != tt.rate || cfg.VerifyFailureBurst != tt.burst || cfg.MaxKeyLifetime != tt.lifetime {
				t.Errorf("rate %v, burst %d, lifetime %v; want %v, %d, %v", cfg.VerifyFailureRate, cfg.VerifyFailureBurst, cfg.MaxKeyLifetime, tt.rate, tt.burst, tt.lifetime)
			}
		})
	}
}
