package webex

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"tally/model"
	"tally/source"
)

// Estate is what the API answered for one organisation on one day.
type Estate struct {
	Customer   model.Customer
	Licenses   []License
	People     []Person
	Devices    []Device
	Workspaces []Workspace
	Locations  []Location
	Numbers    []Number
}

// NoEndDate is a subscription's end_date when only the licenses API is read:
// it gives no term dates (deliver subscriptions/ in the files landing zone to
// set them).
var NoEndDate = model.DateOf(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))

// LicenseType is the §6 type a license name counts as, "" for a license that is
// not a calling seat (meetings, messaging, hybrid services). A Webex Calling
// Professional (or Basic/Standard user) license is a user's seat — Knowledge
// Worker (developer.webex.com/docs/sdks/android-calling-sdk-webex-calling-introduction:
// "A Webex Calling Professional license is required"; the licenses API's
// LicenseError example names Professional and Standard as user licenses). A
// Workspaces / Common Area license is Common Area (developer.webex.com/docs/api/
// v1/workspace-call-settings: workspaces are lobbies, meeting rooms, shared
// spaces). TelePresence names TelePresence.
func LicenseType(name string) string {
	n := strings.ToLower(name)
	seat := strings.Contains(n, "calling") || strings.Contains(n, "ucm") || strings.Contains(n, "dedicated instance")
	switch {
	case strings.Contains(n, "telepresence"):
		return model.TelePresence
	case !seat:
		return ""
	case strings.Contains(n, "workspace") || strings.Contains(n, "common area") || strings.Contains(n, "public space"):
		return model.CommonArea
	case strings.Contains(n, "professional") || strings.Contains(n, "basic") || strings.Contains(n, "standard") || strings.Contains(n, "knowledge worker"):
		return model.KnowledgeWorker
	}
	return ""
}

// ProductOf is the §5 product a license belongs to ("" when none).
func ProductOf(l License) string {
	n := strings.ToLower(l.Name)
	switch {
	case strings.Contains(n, "dedicated instance"):
		return "dedicated-instance"
	case strings.Contains(n, "ucm"):
		return "ucm-cloud"
	case strings.Contains(n, "calling"):
		return "calling"
	case strings.Contains(n, "meeting") || l.SiteURL != "":
		return "meetings"
	case strings.Contains(n, "messaging"):
		return "messaging"
	}
	return ""
}

// Map turns one organisation's answers into its §5 rows: a pure function of
// the API's JSON. Items it cannot use are Rejected with the reason, never
// dropped silently.
func Map(e Estate) *source.CustomerDay {
	cd := &source.CustomerDay{Customer: e.Customer}
	cid, partner := e.Customer.CustomerID, e.Customer.PartnerID
	reject := func(entity string, item any, err error) {
		row := map[string]any{}
		b, _ := json.Marshal(item)
		json.Unmarshal(b, &row)
		cd.Rejected = append(cd.Rejected, source.Rejected{Entity: entity, File: "webex", Reason: err.Error(), Row: row})
	}

	// Licenses: products, subscriptions (one per subscriptionId) and orders
	// (its seats per license type).
	type sub struct {
		products        map[string]bool
		total, assigned int64
		seats           map[string]int64
	}
	subs := map[string]*sub{}
	products := map[string]bool{}
	seatLicense := map[string]string{} // license id → §6 type
	for _, l := range e.Licenses {
		p := ProductOf(l)
		if p == "" {
			continue
		}
		products[p] = true
		if l.SubscriptionID == "" {
			// A license outside any subscription (free Messaging, say) is a
			// product the customer has, never a subscription of its own.
			continue
		}
		s := subs[l.SubscriptionID]
		if s == nil {
			s = &sub{products: map[string]bool{}, seats: map[string]int64{}}
			subs[l.SubscriptionID] = s
		}
		s.products[p] = true
		if t := LicenseType(l.Name); t != "" {
			seatLicense[l.ID] = t
			s.seats[t] += l.TotalUnits
			s.total += l.TotalUnits
			s.assigned += l.ConsumedUnits
		}
	}
	for _, p := range model.Products {
		if products[p] {
			cd.Customer.Products = append(cd.Customer.Products, p)
		}
	}
	start := model.DateOf(e.Customer.CreatedAt)
	for id, s := range subs {
		row := model.Subscription{SubscriptionID: id, SubscriberID: id, CustomerID: cid, Status: "active", CreatedAt: e.Customer.CreatedAt,
			StartDate: start, EndDate: NoEndDate, OrderID: id, LicensesTotal: s.total, LicensesAssigned: s.assigned,
			LicensesUsed7d: s.assigned, ProvisioningStatuses: []string{"Provisioned"}}
		if strings.Contains(strings.ToLower(id), "trial") {
			row.SubscriptionID, row.SubscriberID, row.OrderID = "Enterprise Trial", "trial-"+cid, "trial-"+cid
			row.IsTrial, row.Status = true, "trial"
		}
		for _, p := range model.Products {
			if s.products[p] {
				row.Product = p
				break
			}
		}
		cd.Subscriptions = append(cd.Subscriptions, row)
		for _, t := range model.LicenseTypes {
			if n, ok := s.seats[t]; ok {
				cd.Orders = append(cd.Orders, model.Order{OrderID: row.OrderID, CustomerID: cid, PartnerID: partner,
					SubscriberID: row.SubscriberID, LicenseType: t, Quantity: n})
			}
		}
	}

	locations := map[string]Location{}
	for _, l := range e.Locations {
		locations[l.ID] = l
	}
	workspaces := map[string]Workspace{}
	for _, w := range e.Workspaces {
		workspaces[w.ID] = w
	}
	// Numbers name their owner by an id of another kind than the owner's own
	// list does (…/PLACE/<uuid> for a workspace listed as …/PLACES/<uuid>):
	// owners are matched by the UUID inside.
	owned := map[string]Number{} // owner UUID → its primary number
	for _, n := range e.Numbers {
		if n.Owner != nil && (n.PhoneNumberType == "PRIMARY" || owned[idUUID(n.Owner.ID)].PhoneNumber == "") {
			owned[idUUID(n.Owner.ID)] = n
		}
	}

	people := map[string]Person{}
	emails := map[string]string{} // person UUID → email
	for _, p := range e.People {
		if p.Type != "" && p.Type != "person" {
			continue // bots and app users hold no calling seat
		}
		u, err := UserOf(p, cid, seatLicense)
		if err != nil {
			reject("users", p, err)
			continue
		}
		people[p.ID] = p
		emails[idUUID(p.ID)] = u.Email
		cd.Users = append(cd.Users, u)
	}

	for _, d := range e.Devices {
		row, err := DeviceOf(d, cid)
		if err != nil {
			reject("devices", d, err)
			continue
		}
		loc := d.LocationID
		var number Number
		if p, ok := people[d.PersonID]; ok {
			number = owned[idUUID(p.ID)]
			if loc == "" {
				loc = p.LocationID
			}
			if number.PhoneNumber == "" && number.Extension == "" {
				number = Number{Extension: p.Extension, PhoneNumber: workNumber(p)}
			}
		} else if w, ok := workspaces[d.WorkspaceID]; ok {
			number = owned[idUUID(w.ID)]
			if loc == "" {
				loc = w.LocationID
			}
		}
		row.LocationID, row.LocationName = locationID(loc), locations[loc].Name
		row.PhoneNumber, row.Extension = optional(number.PhoneNumber), optional(number.Extension)
		cd.Devices = append(cd.Devices, row)
	}

	for _, n := range e.Numbers {
		if n.PhoneNumber == "" {
			continue // an extension without a number is not a row of inventory/numbers
		}
		row, err := NumberOf(n, cid, locations[n.Location.ID].Address.Country)
		if err != nil {
			reject("numbers", n, err)
			continue
		}
		if n.Owner != nil && emails[idUUID(n.Owner.ID)] != "" {
			row.UserID = model.Str(emails[idUUID(n.Owner.ID)])
		}
		cd.Numbers = append(cd.Numbers, row)
	}
	cd.Sort()
	return cd
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func workNumber(p Person) string {
	for _, n := range p.PhoneNumbers {
		if n.Type == "work" {
			return n.Value
		}
	}
	return ""
}

// locationID is the id inside a base64 location id, or the id as it is.
func locationID(id string) string {
	if id == "" {
		return ""
	}
	if tail, err := decodeID(id, "LOCATION"); err == nil {
		return tail
	}
	return id
}

// UserOf maps a person. A person holding a calling seat (seatLicense says which
// license ids are) has the Webex app with their directory identity: a mobile
// client with a directory profile, which §6 counts as Knowledge Worker even
// without a device.
func UserOf(p Person, customerID string, seatLicense map[string]string) (model.User, error) {
	id, err := UUIDOf(p.ID, "PEOPLE")
	if err != nil {
		return model.User{}, err
	}
	if len(p.Emails) == 0 || p.Emails[0] == "" {
		return model.User{}, fmt.Errorf("person %s has no email", id)
	}
	u := model.User{UserID: id, CustomerID: customerID, Email: strings.ToLower(p.Emails[0]),
		HasDN: p.Extension != "" || workNumber(p) != ""}
	for _, l := range p.Licenses {
		if seatLicense[l] == model.KnowledgeWorker {
			u.HasMobileClient, u.HasDirectoryProfile = true, true
		}
	}
	return u, nil
}

var (
	nonHex     = regexp.MustCompile(`[^0-9A-F]`)
	phoneModel = regexp.MustCompile(`\b(68|78|88|98)\d\d\b`)
)

// DeviceType is the §5 device_type of a device's product and API type.
func DeviceType(product, typ string) string {
	p := strings.ToLower(product)
	switch {
	case strings.Contains(p, "telepresence"):
		return model.TelePresenceType
	case typ == "roomdesk" || strings.Contains(p, "room") || strings.Contains(p, "board") || strings.Contains(p, "desk pro") || strings.Contains(p, "desk mini") || strings.HasSuffix(p, " desk"):
		return model.Room
	case strings.Contains(p, "ata"):
		return model.Analog
	case typ == "phone" || strings.Contains(p, "phone") || strings.Contains(p, "mpp") || strings.Contains(p, "dect") || phoneModel.MatchString(p):
		return model.DeskPhone
	case strings.Contains(p, "webex app") || strings.Contains(p, "jabber"):
		return model.SoftClient
	}
	return model.Other
}

// DeviceOf maps a device (its location and number are the caller's to fill).
func DeviceOf(d Device, customerID string) (model.Device, error) {
	id, err := UUIDOf(d.ID, "DEVICE")
	if err != nil {
		return model.Device{}, err
	}
	if d.Product == "" {
		return model.Device{}, fmt.Errorf("device %s has no product", id)
	}
	row := model.Device{DeviceID: id, CustomerID: customerID, DeviceType: DeviceType(d.Product, d.Type), Product: d.Product,
		MAC: nonHex.ReplaceAllString(strings.ToUpper(d.Mac), ""), Firmware: d.Software}
	if d.PersonID != "" {
		u, err := UUIDOf(d.PersonID, "PEOPLE")
		if err != nil {
			return model.Device{}, fmt.Errorf("device %s: %w", id, err)
		}
		row.UserID = &u
	}
	return row, nil
}

var ownerTypes = map[string]string{"PEOPLE": "People", "PLACE": "Workspace", "AUTO_ATTENDANT": "Auto Attendant",
	"CALL_QUEUE": "Call Queue", "HUNT_GROUP": "Hunt Group", "VIRTUAL_LINE": "Virtual Line", "GROUP_PAGING": "Paging Group",
	"VOICEMAIL_GROUP": "Voicemail Group", "CONTACT_CENTER_LINK": "Contact Center Link"}

// NumberOf maps a telephony number; country is its location's.
func NumberOf(n Number, customerID, country string) (model.Number, error) {
	if n.Location.ID == "" {
		return model.Number{}, fmt.Errorf("number %s has no location", n.PhoneNumber)
	}
	row := model.Number{Number: n.PhoneNumber, Extension: optional(n.Extension), CustomerID: customerID,
		LocationID: locationID(n.Location.ID), LocationName: n.Location.Name, Country: country,
		IsActive: n.State == "ACTIVE", UserType: "Unassigned", NumberType: titleCase(n.PhoneNumberType)}
	if n.TollFreeNumber {
		row.PSTNConnection = "Toll-free"
	}
	if n.Owner != nil {
		if t, ok := ownerTypes[n.Owner.Type]; ok {
			row.UserType = t
		} else {
			row.UserType = titleCase(strings.ReplaceAll(n.Owner.Type, "_", " "))
		}
		for _, kind := range []string{"PEOPLE", "PLACE", "AUTO_ATTENDANT", "CALL_QUEUE", "HUNT_GROUP", "VIRTUAL_LINE"} {
			if u, err := UUIDOf(n.Owner.ID, kind); err == nil {
				row.UserUUID = &u
				break
			}
		}
	}
	if err := row.Validate(); err != nil {
		return model.Number{}, err
	}
	return row, nil
}

func titleCase(s string) string {
	words := strings.Fields(strings.ToLower(s))
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// CallLegOf maps one call-history record to a call leg. The feed carries no
// media quality (jitter, latency, loss are 0: a cloud leg is never "poor");
// quality for Dedicated Instance legs comes from the files source's CMRs.
func CallLegOf(rec CDR, customerID string) (model.CallLeg, error) {
	str := func(k string) string {
		switch v := rec[k].(type) {
		case string:
			return strings.TrimSpace(v)
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			return strconv.FormatBool(v)
		}
		return ""
	}
	leg := model.CallLeg{LegID: str("Report ID"), CallID: str("Correlation ID"), CustomerID: customerID, LocationID: str("Site UUID")}
	if leg.LegID == "" {
		return leg, fmt.Errorf("call record has no Report ID")
	}
	if leg.CallID == "" {
		leg.CallID = leg.LegID
	}
	if leg.LocationID == "" {
		leg.LocationID = str("Location")
	}
	start, err := time.Parse(time.RFC3339Nano, str("Start time"))
	if err != nil {
		return leg, fmt.Errorf("call record %s: Start time %q is not a timestamp", leg.LegID, str("Start time"))
	}
	leg.StartTime = start.UTC().Truncate(time.Microsecond)
	if d := str("Duration"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return leg, fmt.Errorf("call record %s: Duration %q is not a number of seconds", leg.LegID, d)
		}
		leg.DurationSeconds = n
	}
	if u := str("User UUID"); u != "" && (str("User type") == "User" || str("User type") == "") {
		if id, err := UUIDOf(u, "PEOPLE"); err == nil {
			leg.UserID = &id
		}
	}
	switch client := str("Client type"); {
	case client == "WXC_DEVICE":
		leg.DeviceType = DeviceType(str("Model"), "phone")
	case client == "WXC_CLIENT" || client == "TEAMS_WXC_CLIENT" || client == "WXC_THIRD_PARTY":
		leg.DeviceType = model.SoftClient
		if os := strings.ToLower(str("OS type")); os == "ios" || os == "android" {
			leg.DeviceType = model.Mobile
		}
	case client == "WXC_SIP_GW":
		leg.DeviceType = model.Analog
	case str("Sub client type") == "MOBILE_NETWORK":
		leg.DeviceType = model.Mobile
	default:
		leg.DeviceType = model.Other
	}
	switch {
	case str("Call type") == "SIP_ENTERPRISE":
		leg.Direction = "internal"
	case str("Direction") == "ORIGINATING":
		leg.Direction = "outbound"
	default:
		leg.Direction = "inbound"
	}
	reasons := str("Redirect reason") + " " + str("Related reason") + " " + str("Original reason")
	switch {
	case strings.Contains(reasons, "CallQueue") || str("Queue Type") != "":
		leg.RoutedVia = model.Str("call-queue")
		outcome := "timed-out"
		switch {
		case strings.EqualFold(str("Answered"), "true"):
			outcome = "answered"
		case str("Releasing party") == "Remote":
			outcome = "abandoned"
		}
		leg.QueueOutcome = &outcome
		if w := str("Ring duration"); w != "" {
			if n, err := strconv.ParseInt(w, 10, 64); err == nil && n >= 0 {
				leg.QueueWaitSeconds = &n
			}
		}
	case strings.Contains(reasons, "HuntGroup"):
		leg.RoutedVia = model.Str("hunt-group")
	case strings.HasPrefix(str("User type"), "AutomatedAttendant"):
		leg.RoutedVia = model.Str("auto-attendant")
	}
	return leg, leg.Validate()
}

// sortCalls orders a customer's legs by leg_id, as sources yield them.
func sortCalls(legs []model.CallLeg) {
	sort.Slice(legs, func(i, j int) bool { return legs[i].LegID < legs[j].LegID })
}
