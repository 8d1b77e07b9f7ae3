package license

import (
	"fmt"
	"testing"
	"time"

	"tally/model"
)

func user(id string, em, mobile, profile bool) User {
	return User{UserID: id, HasExtensionMobility: em, HasMobileClient: mobile, HasDirectoryProfile: profile}
}

func devs(owner string, typ string, n int) []Device {
	var out []Device
	for i := 0; i < n; i++ {
		d := Device{DeviceID: fmt.Sprintf("%s-dev-%02d", owner, i), DeviceType: typ}
		if owner != "" {
			d.UserID = model.Str(owner)
		}
		out = append(out, d)
	}
	return out
}

func count(uses []Use) map[string]int {
	m := map[string]int{}
	for _, u := range uses {
		m[u.LicenseType]++
	}
	return m
}

func TestLicenseRules(t *testing.T) {
	tp := Device{DeviceID: "tp-1", DeviceType: model.TelePresenceType, UserID: model.Str("u1")}
	sharedTP := Device{DeviceID: "tp-2", DeviceType: model.TelePresenceType}
	cases := []struct {
		name    string
		users   []User
		devices []Device
		want    map[string]int
	}{
		{"a user with 12 devices consumes 1 Knowledge Worker + 2 Common Area",
			[]User{user("u1", false, false, false)}, devs("u1", model.DeskPhone, 12),
			map[string]int{model.KnowledgeWorker: 1, model.CommonArea: 2}},
		{"a user with exactly 10 devices consumes 1 Knowledge Worker and nothing else",
			[]User{user("u1", false, false, false)}, devs("u1", model.SoftClient, 10),
			map[string]int{model.KnowledgeWorker: 1}},
		{"a user with 14 devices consumes 1 Knowledge Worker + 4 Common Area",
			[]User{user("u1", false, false, false)}, devs("u1", model.DeskPhone, 14),
			map[string]int{model.KnowledgeWorker: 1, model.CommonArea: 4}},
		{"a TelePresence device consumes TelePresence whoever owns it (a user's)",
			[]User{user("u1", false, false, false)}, []Device{tp},
			map[string]int{model.TelePresence: 1}},
		{"a TelePresence device consumes TelePresence whoever owns it (shared)",
			nil, []Device{sharedTP},
			map[string]int{model.TelePresence: 1}},
		{"a user's TelePresence device does not count toward the 10 devices",
			[]User{user("u1", false, false, false)}, append(devs("u1", model.DeskPhone, 10), tp),
			map[string]int{model.KnowledgeWorker: 1, model.TelePresence: 1}},
		{"a shared phone consumes Common Area",
			nil, devs("", model.DeskPhone, 1),
			map[string]int{model.CommonArea: 1}},
		{"a shared analog line consumes Common Area",
			nil, devs("", model.Analog, 1),
			map[string]int{model.CommonArea: 1}},
		{"a room device is not TelePresence: a shared room device is Common Area",
			nil, devs("", model.Room, 1),
			map[string]int{model.CommonArea: 1}},
		{"a user with only Extension Mobility consumes Knowledge Worker",
			[]User{user("u1", true, false, false)}, nil,
			map[string]int{model.KnowledgeWorker: 1}},
		{"a user with only a mobile client with a directory profile consumes Knowledge Worker",
			[]User{user("u1", false, true, true)}, nil,
			map[string]int{model.KnowledgeWorker: 1}},
		{"a mobile client without a directory profile consumes nothing",
			[]User{user("u1", false, true, false)}, nil,
			map[string]int{}},
		{"a user with no device, no Extension Mobility and no mobile client consumes nothing",
			[]User{user("u1", false, false, false)}, nil,
			map[string]int{}},
		{"a user with only a TelePresence device consumes TelePresence and no Knowledge Worker",
			[]User{user("u1", false, false, false)}, []Device{tp},
			map[string]int{model.TelePresence: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := count(Classify(tc.users, tc.devices))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("licenses = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBeyondTheTenthIsBySortedDeviceID(t *testing.T) {
	ds := devs("u1", model.DeskPhone, 12)
	ds[0], ds[11] = ds[11], ds[0] // unsorted input
	uses := Classify([]User{user("u1", false, false, false)}, ds)
	var ca []string
	for _, u := range uses {
		if u.LicenseType == model.CommonArea {
			ca = append(ca, u.EntityID)
		}
	}
	if fmt.Sprint(ca) != "[u1-dev-10 u1-dev-11]" {
		t.Fatalf("Common Area devices = %v, want the 11th and 12th by device_id", ca)
	}
}

func TestKnowledgeWorkerCountsOnTheUsersClusterDeviceOnTheDevicesCluster(t *testing.T) {
	u := user("u1", false, false, false)
	u.ClusterID = model.Str("cl-user")
	ds := devs("u1", model.DeskPhone, 11)
	for i := range ds {
		ds[i].ClusterID = model.Str("cl-dev")
	}
	for _, use := range Classify([]User{u}, ds) {
		want := "cl-dev"
		if use.EntityType == "user" {
			want = "cl-user"
		}
		if model.Deref(use.ClusterID) != want {
			t.Fatalf("%s %s counts on %s, want %s", use.EntityType, use.EntityID, model.Deref(use.ClusterID), want)
		}
	}
}

func TestCompliance(t *testing.T) {
	cases := []struct {
		name               string
		entitled, consumed int64
		want               string
	}{
		{"over when consumed > entitled", 10, 11, "over"},
		{"ok when consumed = entitled", 10, 10, "ok"},
		{"under when consumed < 0.5 × entitled", 10, 4, "under"},
		{"ok at exactly the under threshold (0.5 × entitled)", 10, 5, "ok"},
		{"over when nothing was ordered and something is consumed", 0, 1, "over"},
		{"ok when nothing was ordered or consumed", 0, 0, "ok"},
		{"under when something was ordered and nothing consumed", 3, 0, "under"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Compliance(tc.entitled, tc.consumed, 0.5); got != tc.want {
				t.Fatalf("Compliance(%d, %d) = %s, want %s", tc.entitled, tc.consumed, got, tc.want)
			}
		})
	}
	if got := Compliance(10, 6, 0.7); got != "under" {
		t.Fatalf("a configurable under threshold of 0.7: 6 of 10 = %s, want under", got)
	}
}

func TestAttribution(t *testing.T) {
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	d := func(s string) model.Date { t, _ := time.Parse("2006-01-02", s); return model.DateOf(t) }
	sub := func(id, product, status string, trial bool, start, end string) model.Subscription {
		return model.Subscription{SubscriberID: id, Product: product, Status: status, IsTrial: trial, StartDate: d(start), EndDate: d(end)}
	}
	cases := []struct {
		name string
		subs []model.Subscription
		want string
	}{
		{"the latest started active calling subscription if several", []model.Subscription{
			sub("old", "calling", "active", false, "2025-01-01", "2027-01-01"),
			sub("new", "dedicated-instance", "active", false, "2026-03-01", "2027-03-01"),
			sub("meet", "meetings", "active", false, "2026-06-01", "2027-06-01")}, "new"},
		{"its trial if it has only a trial", []model.Subscription{
			sub("tr", "calling", "trial", true, "2026-11-01", "2026-12-01")}, "tr"},
		{"a paid subscription wins over a trial", []model.Subscription{
			sub("tr", "calling", "trial", true, "2026-11-01", "2026-12-01"),
			sub("paid", "calling", "active", false, "2025-11-01", "2026-12-01")}, "paid"},
		{"no calling subscription: none", []model.Subscription{
			sub("meet", "meetings", "active", false, "2026-06-01", "2027-06-01")}, ""},
		{"an ended subscription is not active", []model.Subscription{
			sub("ended", "calling", "active", false, "2025-01-01", "2026-01-01")}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if s := Attribute(tc.subs, day); s != nil {
				got = s.SubscriberID
			}
			if got != tc.want {
				t.Fatalf("attributed to %q, want %q", got, tc.want)
			}
		})
	}
}
