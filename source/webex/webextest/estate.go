package webextest

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"time"

	"tally/source/webex"
)

// ID is a base64 Webex id of kind for uuid, as the API spells ids.
func ID(kind, uuid string) string {
	return base64.RawStdEncoding.EncodeToString([]byte("ciscospark://us/" + kind + "/" + uuid))
}

func uuidFor(parts ...any) string {
	h := fnv.New64a()
	fmt.Fprint(h, parts...)
	v := h.Sum64()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(v>>32), uint16(v>>16), uint16(v)&0xfff, uint16(v>>4)&0xfff, v&0xffffffffffff)
}

var countries = map[string]string{"US": "US", "CA": "CA", "EU": "DE", "UAE": "AE"}

// Customer is organisation k of partner in region, with what the API says of
// it: 3+k people holding a Webex Calling Professional license, each with a
// desk phone and a number; a person with no license and a bot; a workspace
// with a Room Kit, an ATA and a TelePresence device; licenses of subscription
// Sub-<partner>-<region>-<k> (Professional 10+k, Workspaces 2, Meetings 5);
// and two calls per licensed person on day plus one call-queue call, and calls
// at the day's edges (DayLegs counts the day's). By §6 it
// consumes 3+k Knowledge Worker, 2 Common Area and 1 TelePresence licenses.
func Customer(partner, region string, k int, day time.Time) (Org, *Data) {
	return Sized(partner, region, k, 3+k, day)
}

// Sized is Customer k with people licensed people instead of 3+k (a
// benchmark's estate of many like-sized organisations).
func Sized(partner, region string, k, people int, day time.Time) (Org, *Data) {
	orgUUID := uuidFor("org", partner, region, k)
	org := Org{ID: ID("ORGANIZATION", orgUUID), DisplayName: fmt.Sprintf("%s %s Customer %d", partner, region, k),
		Created: "2025-03-04T05:06:07.000Z", Partner: partner}
	d := &Data{}
	loc := webex.Location{ID: ID("LOCATION", uuidFor("loc", orgUUID)), Name: "HQ " + region, OrgID: org.ID}
	loc.Address.Country = countries[region]
	loc.Address.City = "Capital"
	d.Locations = []webex.Location{loc}
	sub := fmt.Sprintf("Sub-%s-%s-%d", partner, region, k)
	pro := webex.License{ID: ID("LICENSE", uuidFor("pro", orgUUID)), Name: "Webex Calling - Professional", TotalUnits: int64(7 + people), ConsumedUnits: int64(people), ConsumedByUsers: int64(people), SubscriptionID: sub}
	ws := webex.License{ID: ID("LICENSE", uuidFor("ws", orgUUID)), Name: "Webex Calling - Workspaces", TotalUnits: 2, ConsumedUnits: 1, ConsumedByWorkspaces: 1, SubscriptionID: sub}
	mtg := webex.License{ID: ID("LICENSE", uuidFor("mtg", orgUUID)), Name: "Webex Meetings - Enterprise", TotalUnits: 5, ConsumedUnits: 2, SubscriptionID: sub, SiteURL: "acme.webex.com", SiteType: "Control Hub managed site"}
	d.Licenses = []webex.License{pro, ws, mtg}
	number := func(i int) string { // +1 and ten digits, unique per person
		h := fnv.New64a()
		fmt.Fprint(h, orgUUID, i)
		return fmt.Sprintf("+1%010d", h.Sum64()%1e10)
	}
	for i := 0; i < people; i++ {
		pid := uuidFor("person", orgUUID, i)
		p := webex.Person{ID: ID("PEOPLE", pid), Emails: []string{fmt.Sprintf("user%d@c%d-%s.example.com", i, k, region)},
			PhoneNumbers: []webex.PhoneNumber{{Type: "work", Value: number(i), Primary: true}}, Extension: fmt.Sprintf("%d", 1000+i),
			LocationID: loc.ID, DisplayName: fmt.Sprintf("User %d", i), OrgID: org.ID, Licenses: []string{pro.ID, mtg.ID}, Created: org.Created, Type: "person"}
		d.People = append(d.People, p)
		d.Devices = append(d.Devices, webex.Device{ID: ID("DEVICE", uuidFor("phone", pid)), DisplayName: "Desk phone", PersonID: p.ID, OrgID: org.ID,
			Product: "Cisco 8845", Type: "phone", Mac: fmt.Sprintf("0c:75:bd:%02x:%02x:%02x", k, i, len(region)), Software: "sip88xx.14-2-1", Created: org.Created})
		n := webex.Number{PhoneNumber: number(i), Extension: p.Extension, State: "ACTIVE", PhoneNumberType: "PRIMARY", IncludedTelephonyTypes: "PSTN_NUMBER"}
		n.Location.ID, n.Location.Name = loc.ID, loc.Name
		n.Owner = &struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			FirstName string `json:"firstName,omitempty"`
			LastName  string `json:"lastName,omitempty"`
		}{ID: p.ID, Type: "PEOPLE", FirstName: "User", LastName: fmt.Sprint(i)}
		d.Numbers = append(d.Numbers, n)
		for c := 0; c < 2; c++ {
			start := day.Add(time.Duration(9+c*4) * time.Hour).Add(time.Duration(i) * time.Minute)
			d.CDRs = append(d.CDRs, webex.CDR{"Report ID": uuidFor("cdr", pid, c), "Correlation ID": uuidFor("call", pid, c), "Start time": start.Format("2006-01-02T15:04:05.000Z"),
				"Duration": float64(60 * (c + 1)), "Direction": []string{"ORIGINATING", "TERMINATING"}[c], "User UUID": pid, "User type": "User", "Client type": "WXC_DEVICE",
				"Model": "Cisco 8845", "Site UUID": uuidFor("loc", orgUUID), "Location": loc.Name, "Answered": "true", "Call type": "SIP_NATIONAL", "Org UUID": orgUUID})
		}
	}
	d.People = append(d.People,
		webex.Person{ID: ID("PEOPLE", uuidFor("nolicense", orgUUID)), Emails: []string{fmt.Sprintf("guest@c%d-%s.example.com", k, region)}, OrgID: org.ID, Type: "person"},
		webex.Person{ID: ID("PEOPLE", uuidFor("bot", orgUUID)), Emails: []string{fmt.Sprintf("bot%d@webex.bot", k)}, OrgID: org.ID, Type: "bot"})
	wsID := ID("PLACE", uuidFor("workspace", orgUUID))
	d.Workspaces = []webex.Workspace{{ID: wsID, OrgID: org.ID, LocationID: loc.ID, DisplayName: "Board room", Type: "meetingRoom"}}
	for i, prod := range []struct{ product, typ string }{{"Cisco Webex Room Kit", "roomdesk"}, {"Cisco ATA 192", "phone"}, {"Cisco TelePresence SX80", "roomdesk"}} {
		d.Devices = append(d.Devices, webex.Device{ID: ID("DEVICE", uuidFor("shared", orgUUID, i)), WorkspaceID: wsID, OrgID: org.ID,
			Product: prod.product, Type: prod.typ, Mac: fmt.Sprintf("AA-BB-CC-%02X-%02X-%02X", k, i, len(region)), Software: "RoomOS 11.1"})
	}
	d.CDRs = append(d.CDRs, webex.CDR{"Report ID": uuidFor("queue", orgUUID), "Correlation ID": uuidFor("queuecall", orgUUID), "Start time": day.Add(15 * time.Hour).Format("2006-01-02T15:04:05.000Z"),
		"Duration": float64(240), "Direction": "TERMINATING", "User type": "CallCenterStandard", "Client type": "", "Redirect reason": "CallQueue", "Queue Type": "Call Queue",
		"Answered": "true", "Ring duration": float64(25), "Site UUID": uuidFor("loc", orgUUID), "Org UUID": orgUUID})
	// Calls at the day's edges: the feed selects records by report time (the
	// time the call finished: reports-detailed-call-history/get-detailed-call-history,
	// startTime "Report time is the time the call finished"), a day's legs are
	// those that started in it. One started the evening before and ended
	// after midnight (not the day's), one crosses into the next day (the
	// day's), one starts exactly at the next midnight (not the day's).
	first := d.People[0]
	firstUUID, _ := webex.UUIDOf(first.ID, "PEOPLE")
	for i, edge := range []struct {
		start time.Time
		secs  int
	}{{day.Add(-time.Minute), 180}, {day.Add(24*time.Hour - 2*time.Minute), 300}, {day.Add(24 * time.Hour), 60}} {
		d.CDRs = append(d.CDRs, webex.CDR{"Report ID": uuidFor("edge", orgUUID, i), "Correlation ID": uuidFor("edgecall", orgUUID, i),
			"Start time": edge.start.Format("2006-01-02T15:04:05.000Z"), "Duration": float64(edge.secs), "Direction": "ORIGINATING",
			"User UUID": firstUUID, "User type": "User", "Client type": "WXC_DEVICE", "Model": "Cisco 8845", "Site UUID": uuidFor("loc", orgUUID),
			"Location": loc.Name, "Answered": "true", "Call type": "SIP_NATIONAL", "Org UUID": orgUUID})
	}
	for _, rec := range d.CDRs {
		start, _ := time.Parse(time.RFC3339Nano, rec["Start time"].(string))
		rec["Report time"] = start.Add(time.Duration(rec["Duration"].(float64)) * time.Second).Format("2006-01-02T15:04:05.000Z")
	}
	return org, d
}

// DayLegs is how many of Customer k's legs started on its day: two per
// licensed person, the queue call and the call crossing into the next day.
func DayLegs(k int) int { return 2*(3+k) + 1 + 1 }

// Add puts a customer in the fake.
func (f *Fake) Add(org Org, d *Data) {
	f.Orgs = append(f.Orgs, org)
	f.Data[org.ID] = d
}

// OrgUUID is the UUID of an Org made by Customer.
func OrgUUID(o Org) string {
	u, err := webex.OrgUUID(o.ID)
	if err != nil {
		panic(err)
	}
	return u
}
