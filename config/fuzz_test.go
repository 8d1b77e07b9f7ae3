package config

import (
	"strings"
	"testing"

	"tally/runner"
)

// The config file and TALLY_* variables come from operators: any bytes must give
// a config or a clear usage error, never a panic.
func FuzzConfigYAMLAndEnvironmentDecodeToAConfigOrAUsageError(f *testing.F) {
	f.Add([]byte("source:\n  scale: 10\n"), "TALLY_SOURCE_SCALE=5")
	f.Add([]byte("storage:\n  type: s3\n  s3:\n    bucket: b\n"), "TALLY_SERVE_PORT=tcp://10.0.0.1:8080")
	f.Add([]byte("runner: [1, 2]\n"), "TALLY_RUNNER_LEASE_TTL=forever")
	f.Add([]byte("jobs:\n  analytics:\n    schedule: \"61 * * * *\"\n"), "TALLY_ALERTS_EMAIL=a@b.c,d@e.f")
	f.Add([]byte("smtp:\n  password: hunter2\n"), "TALLY_X=1")
	f.Fuzz(func(t *testing.T, yaml []byte, env string) {
		var cfg Config
		if err := decodeStrict(defaultsYAML, &cfg, "defaults"); err != nil {
			t.Fatal(err)
		}
		err := decodeStrict(yaml, &cfg, "fuzz.yaml")
		if err == nil {
			err = applyEnv(&cfg, strings.Split(env, "\x00"))
		}
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil && !runner.IsUsage(err) {
			t.Fatalf("a bad config is not a usage error (exit 2): %v", err)
		}
	})
}
