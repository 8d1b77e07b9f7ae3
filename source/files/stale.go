package files

import (
	"context"
	"encoding/json"
	"fmt"

	"tally/periods"
	"tally/source"
)

var _ source.ChangeDetector = (*Source)(nil)

// Changed compares the input files a run of day recorded (its ledger notes)
// with the landing zone now: a delivered file changed or gone, or a CDR/CMR file
// that arrived or changed later, makes the day stale. "" means unchanged.
func (s *Source) Changed(ctx context.Context, day periods.Period, notes map[string]any) (string, error) {
	var recorded struct {
		Inputs []ManifestFile `json:"input_files"`
		CDR    []callFile     `json:"cdr_files"`
	}
	b, _ := json.Marshal(notes)
	json.Unmarshal(b, &recorded)
	for _, f := range recorded.Inputs {
		sum, size, err := s.hash(ctx, f.Path)
		if err != nil {
			return fmt.Sprintf("input %s is gone (%v)", f.Path, err), nil
		}
		if sum != f.SHA256 || size != f.Size {
			return fmt.Sprintf("input %s changed after the run used it", f.Path), nil
		}
	}
	now, err := cdrFiles(ctx, s.Root, day, s.MaxCallLength)
	if err != nil {
		return "", err
	}
	had := map[string]callFile{}
	for _, f := range recorded.CDR {
		had[f.Path] = f
	}
	for _, f := range now {
		old, ok := had[f.key]
		if !ok {
			return fmt.Sprintf("call records %s arrived after the run", f.key), nil
		}
		changed := f.etag != old.ETag || f.size != old.Size
		if old.ETag == "" { // recorded by a tally that hashed call records
			sum, size, err := s.hash(ctx, f.key)
			if err != nil {
				return "", err
			}
			changed = sum != old.SHA256 || size != old.Size
		}
		if changed {
			return fmt.Sprintf("call records %s changed after the run used them", f.key), nil
		}
	}
	return "", nil
}
