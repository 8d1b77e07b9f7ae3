package webex

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestAnOrganizationIdDecodesToTheUUIDInsideItsCiscosparkURI(t *testing.T) {
	uuid := "efc3a1a1-5fcc-45bd-b650-4bf98d0ae26a"
	b64 := base64.RawStdEncoding.EncodeToString([]byte("ciscospark://us/ORGANIZATION/" + uuid))
	for in, want := range map[string]string{
		b64:                   uuid,
		b64 + "=":             uuid,
		strings.ToUpper(uuid): uuid,
		base64.RawURLEncoding.EncodeToString([]byte("ciscospark://eu/ORGANIZATION/" + uuid)): uuid,
	} {
		if got, err := OrgUUID(in); err != nil || got != want {
			t.Errorf("OrgUUID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "not-an-id", base64.RawStdEncoding.EncodeToString([]byte("ciscospark://us/PEOPLE/" + uuid)),
		base64.RawStdEncoding.EncodeToString([]byte("https://evil/ORGANIZATION/" + uuid))} {
		if _, err := OrgUUID(bad); err == nil {
			t.Errorf("OrgUUID(%q) accepted a non-organization id", bad)
		}
	}
}

func TestAnOrganizationMapsToACustomerOrAClearError(t *testing.T) {
	uuid := "efc3a1a1-5fcc-45bd-b650-4bf98d0ae26a"
	id := base64.RawStdEncoding.EncodeToString([]byte("ciscospark://us/ORGANIZATION/" + uuid))
	c, err := CustomerOf(json.RawMessage(`{"id":"`+id+`","displayName":"Acme, Inc.","created":"2026-01-02T03:04:05.678Z","extra":1}`), "P1")
	if err != nil || c.CustomerID != uuid || c.CustomerName != "Acme, Inc." || c.PartnerID != "P1" || c.CreatedAt.Year() != 2026 {
		t.Fatalf("CustomerOf: %+v, %v", c, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the mapped customer is not a valid §5 row: %v", err)
	}
	for _, bad := range []string{`{}`, `{"id":"` + id + `"}`, `{"id":"` + id + `","displayName":"x","created":"yesterday"}`, `[]`, `null`} {
		if _, err := CustomerOf(json.RawMessage(bad), "P1"); err == nil {
			t.Errorf("CustomerOf(%s) accepted it", bad)
		}
	}
}

// The API's JSON comes from outside: missing, extra or mistyped fields give a
// customer or an error, never a panic.
func FuzzOrganizationJSONMapsToACustomerOrAnErrorNeverAPanic(f *testing.F) {
	f.Add(`{"id":"Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9lZmMzYTFhMS01ZmNjLTQ1YmQtYjY1MC00YmY5OGQwYWUyNmE","displayName":"Acme","created":"2026-01-02T03:04:05.000Z"}`)
	f.Add(`{"id":5,"displayName":null}`)
	f.Add(`{"id":"` + strings.Repeat("A", 1000) + `"}`)
	f.Fuzz(func(t *testing.T, js string) {
		c, err := CustomerOf(json.RawMessage(js), "P1")
		if err == nil && (c.CustomerID == "" || c.CustomerName == "") {
			t.Fatalf("accepted %s as %+v", js, c)
		}
	})
}
