package subscriptions

import (
	"strings"
	"testing"

	"tally/periods"
)

// Subscription fields come from the command line and end up in email headers
// and storage keys.
func FuzzSubscriptionFieldsNeverReachAHeaderOrAKeyUnchecked(f *testing.F) {
	f.Add("flex-daily", "P093374", "ops@example.com", "US")
	f.Add("../../etc", "P0", "a@b.c\r\nBcc: x@y.z", "EU")
	f.Add("x", "p", "Name <a@b.c>", "MARS")
	cat, err := NewCatalog(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, partner, to, region string) {
		s := &Subscription{ID: id, PartnerID: partner, Template: "devices", Cadence: periods.Daily, Recipients: []string{to},
			Regions: []string{region}, Role: FullAdmin, Formats: []string{"csv"}}
		if cat.Validate(s) != nil {
			return
		}
		if strings.ContainsAny(to, "\r\n<>,;\"") || strings.ContainsAny(id, "/.\\") || strings.ContainsAny(partner, "/.\\\r\n") {
			t.Fatalf("accepted a subscription that would inject a header or a path: %+v", s)
		}
		if _, err := key(id); err != nil {
			t.Fatalf("a valid id %q has no key: %v", id, err)
		}
	})
}
