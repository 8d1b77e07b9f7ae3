package webex

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"tally/model"
	"testing"
	"time"
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

// Every item of every endpoint comes from outside: whatever its JSON, Map and
// CallLegOf give rows or rejections, never a panic.
func FuzzEndpointJSONMapsToRowsOrRejectionsNeverAPanic(f *testing.F) {
	f.Add([]byte(`{"id":"x","name":"Webex Calling - Professional","totalUnits":3,"subscriptionId":"S"}`), []byte(`{"id":"Y2lzY29zcGFyazovL3VzL1BFT1BMRS8x","emails":[]}`),
		[]byte(`{"id":"d","product":"Cisco 8845","personId":"nope","mac":"zz"}`), []byte(`{"phoneNumber":"+15550100","location":{"id":""},"owner":{"type":"PEOPLE"}}`),
		[]byte(`{"Report ID":"r","Start time":"2026-11-21T10:00:00.000Z","Duration":"-1","Queue Type":"Call Queue","Ring duration":"x"}`))
	// The reference-shaped fixtures' items, each endpoint's first, as a seed.
	first := func(file, key string) []byte {
		var body map[string][]json.RawMessage
		b, err := os.ReadFile(filepath.Join("testdata", "reference", file))
		if err != nil || json.Unmarshal(b, &body) != nil || len(body[key]) == 0 {
			f.Fatalf("fixture %s: %v", file, err)
		}
		return body[key][0]
	}
	f.Add(first("licenses.json", "items"), first("people.json", "items"), first("devices.json", "items"), first("numbers.json", "phoneNumbers"), first("cdr_feed.json", "items"))
	f.Fuzz(func(t *testing.T, license, person, device, number, cdr []byte) {
		var e Estate
		e.Customer.CustomerID, e.Customer.PartnerID = "efc3a1a1-5fcc-45bd-b650-4bf98d0ae26a", "P1"
		var l License
		var p Person
		var d Device
		var n Number
		if json.Unmarshal(license, &l) == nil {
			e.Licenses = append(e.Licenses, l)
		}
		if json.Unmarshal(person, &p) == nil {
			e.People = append(e.People, p)
			p.Licenses = append(p.Licenses, l.ID)
		}
		if json.Unmarshal(device, &d) == nil {
			e.Devices = append(e.Devices, d)
		}
		if json.Unmarshal(number, &n) == nil {
			e.Numbers = append(e.Numbers, n)
		}
		cd := Map(e)
		for _, u := range cd.Users {
			if err := u.Validate(); err != nil && !strings.Contains(err.Error(), "email") {
				t.Fatalf("a mapped user is invalid beyond its email: %v", err)
			}
		}
		var rec CDR
		if json.Unmarshal(cdr, &rec) == nil {
			if leg, err := CallLegOf(rec, e.Customer.CustomerID); err == nil {
				if err := leg.Validate(); err != nil {
					t.Fatalf("CallLegOf returned an invalid leg without an error: %v", err)
				}
			}
		}
	})
}

func sparkID(kind, uuid string) string {
	return base64.RawStdEncoding.EncodeToString([]byte("ciscospark://us/" + kind + "/" + uuid))
}

// The reference spells a workspace's id …/PLACES/<uuid> in /workspaces and its
// number's owner …/PLACE/<uuid> in /telephony/config/numbers.
func TestSingularAndPluralIdKindsDecodeToTheSameUUID(t *testing.T) {
	uuid := "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	for _, kind := range []string{"PLACE", "PLACES"} {
		for _, want := range []string{"PLACE", "PLACES"} {
			if got, err := UUIDOf(sparkID(kind, uuid), want); err != nil || got != uuid {
				t.Errorf("UUIDOf(…/%s/…, %s) = %q, %v", kind, want, got, err)
			}
		}
	}
	ws := Workspace{ID: sparkID("PLACES", uuid), DisplayName: "Lobby", LocationID: sparkID("LOCATION", "11111111-2222-4333-8444-555555555555")}
	loc := Location{ID: ws.LocationID, Name: "HQ"}
	loc.Address.Country = "US"
	n := Number{PhoneNumber: "+15551230000", State: "ACTIVE", PhoneNumberType: "PRIMARY"}
	n.Location.ID, n.Location.Name = loc.ID, loc.Name
	n.Owner = &struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		FirstName string `json:"firstName,omitempty"`
		LastName  string `json:"lastName,omitempty"`
	}{ID: sparkID("PLACE", uuid), Type: "PLACE"}
	dev := Device{ID: sparkID("DEVICE", "99999999-8888-4777-8666-555555555555"), WorkspaceID: ws.ID, Product: "Cisco 8865", Type: "phone"}
	cd := Map(Estate{Customer: testCustomer(), Workspaces: []Workspace{ws}, Locations: []Location{loc}, Numbers: []Number{n}, Devices: []Device{dev}})
	if len(cd.Numbers) != 1 || cd.Numbers[0].UserUUID == nil || *cd.Numbers[0].UserUUID != uuid || cd.Numbers[0].UserType != "Workspace" {
		t.Fatalf("the workspace's number: %+v", cd.Numbers)
	}
	if len(cd.Devices) != 1 || cd.Devices[0].PhoneNumber == nil || *cd.Devices[0].PhoneNumber != n.PhoneNumber {
		t.Fatalf("the workspace's phone has no number: %+v", cd.Devices)
	}
}

// A license with no subscriptionId (free Messaging) is a product the customer
// has, never a subscription ("Enterprise Trial" or any other).
func TestLicensesWithoutASubscriptionIdMakeNoSubscription(t *testing.T) {
	cd := Map(Estate{Customer: testCustomer(), Licenses: []License{
		{ID: "l1", Name: "Messaging", TotalUnits: 100, ConsumedUnits: 3},
		{ID: "l2", Name: "Webex Calling - Professional", TotalUnits: 10, ConsumedUnits: 4, SubscriptionID: "Sub-1"},
	}})
	if len(cd.Subscriptions) != 1 || cd.Subscriptions[0].SubscriptionID != "Sub-1" || cd.Subscriptions[0].IsTrial {
		t.Fatalf("subscriptions: %+v", cd.Subscriptions)
	}
	if strings.Join(cd.Customer.Products, ",") != "calling,messaging" {
		t.Fatalf("products %v: the free license still counts toward the customer's products", cd.Customer.Products)
	}
}

func testCustomer() model.Customer {
	return model.Customer{CustomerID: "efc3a1a1-5fcc-45bd-b650-4bf98d0ae26a", CustomerName: "Acme", PartnerID: "P1", ManagedBy: "partner",
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}
