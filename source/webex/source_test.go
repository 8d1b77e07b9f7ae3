package webex_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/source/webex"
	"tally/source/webex/webextest"
	"tally/storage/local"
)

var day = periods.Containing(periods.Daily, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))

// newSource is a webex source of one partner P1 over a fake holding customers
// 0..n-1 in region EU; its clock (shared with the fake) is 00:20 the next day.
func newSource(t *testing.T, n int) (*webex.Source, *webextest.Fake, *clock.Fake, *bytes.Buffer) {
	t.Helper()
	f, _ := webextest.New(t)
	clk := clock.NewFake(day.End().Add(150 * time.Minute))
	f.Now = clk.Now
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := webex.ImportRefreshToken(context.Background(), store, webex.TokenKey("P1"), f.RefreshToken("P1")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(zerolog.SyncWriter(&logs))
	oauth := &webex.OAuth{Key: webex.TokenKey("P1"), TokenURL: f.URL + "/access_token", ClientID: webextest.ClientID, ClientSecret: webextest.ClientSecret, Store: store, Now: clk.Now}
	c := &webex.Client{BaseURL: f.URL, Tokens: oauth, Clock: clk, Log: log, RequestTimeout: 2 * time.Second, Attempts: 3, Jitter: func() float64 { return 0 }}
	s := &webex.Source{Accounts: []webex.Account{{Partner: model.Partner{PartnerID: "P1", PartnerName: "Partner One"}, Client: c}},
		Regions: map[string]string{}, CallsHosts: map[string]string{"EU": f.CallsHost("EU")}, Parallel: 2, CallsParallel: 2,
		CallsInterval: time.Minute, Clock: clk, Log: log}
	for k := 0; k < n; k++ {
		org, d := webextest.Customer("P1", "EU", k, day.Start)
		f.Add(org, d)
		s.Regions[webextest.OrgUUID(org)] = "EU"
	}
	return s, f, clk, &logs
}

func collect(t *testing.T, s *webex.Source) ([]*source.CustomerDay, error) {
	var out []*source.CustomerDay
	err := s.Customers(context.Background(), day, func(cd *source.CustomerDay) error {
		out = append(out, cd)
		return nil
	})
	return out, err
}

func TestAnOrganisationsAnswersMapToValidSection5RowsWithTheLicenseTypesOfSection6(t *testing.T) {
	org, d := webextest.Customer("P1", "US", 2, day.Start)
	c, err := webex.CustomerOf(mustJSON(t, org), "P1")
	if err != nil {
		t.Fatal(err)
	}
	cd := webex.Map(webex.Estate{Customer: c, Licenses: d.Licenses, People: d.People, Devices: d.Devices, Workspaces: d.Workspaces, Locations: d.Locations, Numbers: d.Numbers})
	if len(cd.Rejected) > 0 {
		t.Fatalf("rejected: %+v", cd.Rejected)
	}
	if got := strings.Join(cd.Customer.Products, ","); got != "calling,meetings" {
		t.Errorf("products %q, want calling,meetings (from the license names)", got)
	}
	if len(cd.Users) != 6 { // 5 licensed + 1 unlicensed person; the bot is not a user
		t.Errorf("%d users, want 6", len(cd.Users))
	}
	kw := 0
	for _, u := range cd.Users {
		if err := u.Validate(); err != nil {
			t.Errorf("user: %v", err)
		}
		if u.HasMobileClient && u.HasDirectoryProfile {
			kw++
		}
	}
	if kw != 5 {
		t.Errorf("%d users hold a Webex Calling Professional seat, want 5", kw)
	}
	types := map[string]int{}
	for _, dv := range cd.Devices {
		if err := dv.Validate(); err != nil {
			t.Errorf("device %s: %v", dv.Product, err)
		}
		types[dv.DeviceType]++
		if dv.LocationName != "HQ US" {
			t.Errorf("device %s has location %q, want its person's or workspace's (HQ US)", dv.Product, dv.LocationName)
		}
	}
	if types[model.DeskPhone] != 5 || types[model.Room] != 1 || types[model.Analog] != 1 || types[model.TelePresenceType] != 1 {
		t.Errorf("device types %v", types)
	}
	if len(cd.Subscriptions) != 1 || cd.Subscriptions[0].LicensesTotal != 14 || cd.Subscriptions[0].Product != "calling" {
		t.Errorf("subscriptions %+v, want one calling subscription of 12+2 seats", cd.Subscriptions)
	}
	orders := map[string]int64{}
	for _, o := range cd.Orders {
		orders[o.LicenseType] = o.Quantity
	}
	if orders[model.KnowledgeWorker] != 12 || orders[model.CommonArea] != 2 || len(orders) != 2 {
		t.Errorf("orders %v, want knowledge_worker 12 (Professional), common_area 2 (Workspaces)", orders)
	}
	for _, n := range cd.Numbers {
		if err := n.Validate(); err != nil || n.UserType != "People" || n.Country != "US" || n.UserID == nil {
			t.Errorf("number %+v: %v", n, err)
		}
	}
}

func TestLicenseNamesMapToTheirSection6Types(t *testing.T) {
	for name, want := range map[string]string{
		"Webex Calling - Professional": model.KnowledgeWorker, "Webex Calling - Basic": model.KnowledgeWorker,
		"Webex Calling - Workspaces": model.CommonArea, "Webex Calling - Common Area": model.CommonArea,
		"UCM - Professional": model.KnowledgeWorker, "Dedicated Instance - TelePresence Room": model.TelePresence,
		"Webex Meetings - Enterprise": "", "Advanced Messaging": "", "Hybrid Call Aware": "",
	} {
		if got := webex.LicenseType(name); got != want {
			t.Errorf("LicenseType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCallHistoryIsReadInTwelveHourWindowsOverlappingTheDaysEdgesKeepingLegsByStartTimeWithNoTokenAskedTwiceAMinute(t *testing.T) {
	s, f, _, _ := newSource(t, 3)
	// One customer's history at a time: the fake clock jumps with every
	// sleep, so only sequential requests have times the fake can judge. Three
	// organisations of one token still need 9 initial requests a minute apart.
	s.CallsParallel = 1
	cds, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.CallsFirst.Load(); n != 9 {
		t.Errorf("%d initial call-history requests, want 3 windows × 3 organisations", n)
	}
	if len(cds) != 3 {
		t.Fatalf("%d customers", len(cds))
	}
	for k, cd := range cds {
		if want := webextest.DayLegs(k); len(cd.Calls) != want {
			t.Errorf("customer %d: %d calls, want %d", k, len(cd.Calls), want)
		}
		crossing := 0
		for _, l := range cd.Calls {
			if l.StartTime.Before(day.Start) || !l.StartTime.Before(day.End()) {
				t.Errorf("customer %d: leg %s started %s, outside the day: legs belong to the day of their Start time", k, l.LegID, l.StartTime)
			}
			if l.StartTime.Add(time.Duration(l.DurationSeconds) * time.Second).After(day.End()) {
				crossing++
			}
		}
		if crossing != 1 {
			t.Errorf("customer %d: %d legs crossing midnight into the next day, want the one that started on the day", k, crossing)
		}
		queued := 0
		for _, l := range cd.Calls {
			if l.RoutedVia != nil && *l.RoutedVia == "call-queue" && *l.QueueOutcome == "answered" && *l.QueueWaitSeconds == 25 {
				queued++
			}
		}
		if queued != 1 {
			t.Errorf("customer %d: %d answered call-queue legs, want 1", k, queued)
		}
	}
	if n := f.CallsSoon.Load(); n != 0 {
		t.Errorf("%d call-history requests came over the per-token limit (one initial request a minute)", n)
	}
}

func TestTheCallHistoryOfADayIsWaitedForUntilTheCallsLatenessAndTheFeedsFiveMinutesAfterItEnds(t *testing.T) {
	s, _, clk, _ := newSource(t, 1)
	clk.Set(day.End().Add(2*time.Hour + 4*time.Minute))
	if _, err := collect(t, s); !errors.Is(err, source.ErrWaiting) || !strings.Contains(err.Error(), "calls_lateness") {
		t.Fatalf("at 02:04 the day's last window (to 02:00) is not readable yet: %v, want waiting naming calls_lateness", err)
	}
	clk.Set(day.End().Add(2*time.Hour + 5*time.Minute))
	if _, err := collect(t, s); err != nil {
		t.Fatalf("at 02:05: %v", err)
	}
}

func TestACustomerWhoseCallsFailEveryTimeFailsTheDayUnlessSkipped(t *testing.T) {
	s, f, _, logs := newSource(t, 3)
	org := f.Orgs[1]
	f.FailCalls = org.ID
	_, err := collect(t, s)
	if err == nil || !strings.Contains(err.Error(), webextest.OrgUUID(org)) || !strings.Contains(err.Error(), "trackingid ROUTER_FAKE_") {
		t.Fatalf("one failing customer must fail the day, naming it and the trackingid: %v", err)
	}

	s.SkipFailedCustomers = true
	cds, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(cds) != 2 {
		t.Fatalf("%d customers yielded, want the 2 that answered", len(cds))
	}
	skipped := s.Skipped(day)
	if len(skipped) != 1 || skipped[0].Customer != webextest.OrgUUID(org) {
		t.Fatalf("skipped %+v, want the failing customer listed (the day is partial)", skipped)
	}
	if strings.Contains(logs.String(), "tok-") {
		t.Fatalf("a token is in the log:\n%s", logs.String())
	}
}

func TestAnOrganisationWithNoRegionIsQuarantinedNeverPutInADefaultRegion(t *testing.T) {
	s, f, _, _ := newSource(t, 2)
	delete(s.Regions, webextest.OrgUUID(f.Orgs[0]))
	cds, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(cds) != 1 || cds[0].Customer.CustomerID != webextest.OrgUUID(f.Orgs[1]) {
		t.Fatalf("yielded %d customers, want only the mapped one", len(cds))
	}
	if sk := s.Skipped(day); len(sk) != 1 || !strings.Contains(sk[0].Reason, "source.webex.regions") {
		t.Fatalf("skipped %+v, want the unmapped organisation, naming source.webex.regions", sk)
	}
}

func TestACallHistoryHostOfAnotherRegionIsAnError451NamingTheSettings(t *testing.T) {
	s, f, _, _ := newSource(t, 1)
	f.CallsRegion = map[string]string{f.Orgs[0].ID: "US"}
	_, err := collect(t, s)
	if err == nil || !strings.Contains(err.Error(), "451") || !strings.Contains(err.Error(), "source.webex.calls_hosts") {
		t.Fatalf("%v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The reference-shaped responses (testdata/reference: every field the public
// reference shows, tally's own values) go through the real client and mapping
// to the rows §5 and §6 give for them.
func TestReferenceShapedResponsesMapToTheKnownRows(t *testing.T) {
	s, f, _, _ := newSource(t, 0)
	org, d, err := webextest.FromFixtures("testdata/reference")
	if err != nil {
		t.Fatal(err)
	}
	const orgUUID = "4b1c6a52-8f0e-4d7a-9a35-61f0c2d8e901"
	f.Add(org, d)
	s.Regions[orgUUID] = "EU"
	f.PageSize = 1 // every list paged, one item a page
	cds, err := collect(t, s)
	if err != nil || len(cds) != 1 {
		t.Fatalf("Customers: %d customers, %v", len(cds), err)
	}
	cd := cds[0]
	if len(cd.Rejected) > 0 {
		t.Fatalf("rejected: %+v", cd.Rejected)
	}
	if c := cd.Customer; c.CustomerID != orgUUID || c.CustomerName != "Fixture Health Ltd" || c.CreatedAt.Format(time.RFC3339Nano) != "2024-03-18T09:12:44.512Z" || c.PartnerID != "P1" {
		t.Errorf("customer %+v", c)
	}
	if got := strings.Join(cd.Customer.Products, ","); got != "calling,meetings" {
		t.Errorf("products %q, want calling,meetings (from the license names)", got)
	}

	users := map[string]model.User{}
	for _, u := range cd.Users {
		users[u.Email] = u
	}
	ana, ben := users["ana.silva@fixturehealth.example"], users["ben.okafor@fixturehealth.example"]
	if len(users) != 2 || ana.UserID != "0f6d7e8a-9b1c-4d2e-8f3a-4b5c6d7e8f90" || ben.UserID != "1a7e8f9b-0c2d-4e3f-9a4b-5c6d7e8f9a01" {
		t.Fatalf("users %+v, want Ana and Ben by their PEOPLE UUIDs", cd.Users)
	}
	if !ana.HasDN || !ana.HasMobileClient || ben.HasDN || ben.HasMobileClient {
		t.Errorf("Ana (Professional seat, extension 2101) has a DN and the app, Ben (meetings only) neither: ana %+v, ben %+v", ana, ben)
	}

	devices := map[string]model.Device{}
	for _, dv := range cd.Devices {
		devices[dv.Product] = dv
	}
	phone, desk := devices["Cisco 8865"], devices["Cisco Webex Desk Pro"]
	if phone.UserID == nil || *phone.UserID != ana.UserID || phone.MAC != "001A2B3C4D5E" {
		t.Errorf("Ana's 8865: %+v, want her user id and MAC 001A2B3C4D5E", phone)
	}
	if desk.DeviceID == "" || desk.UserID != nil {
		t.Errorf("the workspace's Desk Pro: %+v, want a shared device (no user: Common Area)", desk)
	}

	numbers := map[string]model.Number{}
	for _, n := range cd.Numbers {
		numbers[n.Number] = n
	}
	if len(numbers) != 2 || numbers["+441134960101"].Number == "" || numbers["+441134960150"].Number == "" {
		t.Errorf("numbers %+v, want +441134960101 and +441134960150", cd.Numbers)
	}

	// Seats: Professional 20 (1 used) → knowledge_worker; Workspaces 5 (1) →
	// common_area; the meetings license is not a seat of §6.
	ordered := map[string]int64{}
	for _, o := range cd.Orders {
		ordered[o.LicenseType] += o.Quantity
	}
	if ordered[model.KnowledgeWorker] != 20 || ordered[model.CommonArea] != 5 || len(ordered) != 2 {
		t.Errorf("orders by license type %v, want knowledge_worker 20, common_area 5", ordered)
	}
	if len(cd.Subscriptions) != 1 || cd.Subscriptions[0].SubscriptionID != "Sub-fixture01" || cd.Subscriptions[0].LicensesTotal != 25 || cd.Subscriptions[0].LicensesAssigned != 2 {
		t.Errorf("subscriptions %+v, want Sub-fixture01 with 25 seats, 2 assigned", cd.Subscriptions)
	}

	legs := map[string]model.CallLeg{}
	for _, l := range cd.Calls {
		legs[l.LegID] = l
	}
	desk1, app, queue := legs["6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b01"], legs["6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b02"], legs["6f1a2b3c-4d5e-4f6a-8b7c-9d0e1f2a3b03"]
	if len(legs) != 3 || desk1.Direction != "outbound" || desk1.DurationSeconds != 184 || desk1.UserID == nil || *desk1.UserID != ana.UserID {
		t.Errorf("Ana's desk-phone call: %+v (of %d legs)", desk1, len(legs))
	}
	if app.DeviceType != model.Mobile || app.Direction != "inbound" {
		t.Errorf("Ana's call on the iOS app: %+v, want a mobile inbound leg", app)
	}
	if queue.RoutedVia == nil || *queue.RoutedVia != "call-queue" || queue.QueueOutcome == nil || *queue.QueueOutcome != "abandoned" || queue.QueueWaitSeconds == nil || *queue.QueueWaitSeconds != 41 {
		t.Errorf("the queue call: %+v, want call-queue, abandoned after 41 s", queue)
	}
}
