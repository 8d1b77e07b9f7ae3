// Package benchfig owns bench-results.json: each bench (the writers, the chain,
// the DuckDB comparison) merges its figures into it under its own keys, so
// running one never drops another's, and marks each goal ok or MISS alike.
package benchfig

import (
	"encoding/json"
	"fmt"
	"os"
)

// Merge sets keys of the figures file at path to the values given, keeping
// every other key it holds.
func Merge(path string, set map[string]any) error {
	figures := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &figures); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for k, v := range set {
		figures[k] = v
	}
	b, err := json.MarshalIndent(figures, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Mark is how a goal's line ends: ok when it is met, MISS when not.
func Mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}
