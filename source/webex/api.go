package webex

// The JSON shapes of the endpoints the source reads, with the fields it uses
// (the API adds fields over time: unknown ones are ignored, missing required
// ones are an error naming the item). Each names its reference page.

// License is an item of GET /v1/licenses?orgId=
// (developer.webex.com/docs/api/v1/licenses/list-licenses).
type License struct {
	ID                   string `json:"id"`
	Name                 string `json:"name"`
	TotalUnits           int64  `json:"totalUnits"`
	ConsumedUnits        int64  `json:"consumedUnits"`
	ConsumedByUsers      int64  `json:"consumedByUsers"`
	ConsumedByWorkspaces int64  `json:"consumedByWorkspaces"`
	SubscriptionID       string `json:"subscriptionId"`
	SiteURL              string `json:"siteUrl,omitempty"`
	SiteType             string `json:"siteType,omitempty"`
}

// PhoneNumber is an entry of a person's phoneNumbers.
type PhoneNumber struct {
	Type    string `json:"type"` // work, work_extension, mobile, fax
	Value   string `json:"value"`
	Primary bool   `json:"primary,omitempty"`
}

// Person is an item of GET /v1/people?orgId=&callingData=true
// (developer.webex.com/docs/api/v1/people/list-people).
type Person struct {
	ID           string        `json:"id"`
	Emails       []string      `json:"emails"`
	PhoneNumbers []PhoneNumber `json:"phoneNumbers,omitempty"`
	Extension    string        `json:"extension,omitempty"`
	LocationID   string        `json:"locationId,omitempty"`
	DisplayName  string        `json:"displayName,omitempty"`
	OrgID        string        `json:"orgId"`
	Licenses     []string      `json:"licenses,omitempty"`
	Created      string        `json:"created,omitempty"`
	Type         string        `json:"type,omitempty"` // person, bot, appuser
}

// Device is an item of GET /v1/devices?orgId=
// (developer.webex.com/docs/api/v1/devices/list-devices).
type Device struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	WorkspaceID string `json:"workspaceId,omitempty"`
	PersonID    string `json:"personId,omitempty"`
	OrgID       string `json:"orgId"`
	Product     string `json:"product"`
	Type        string `json:"type,omitempty"` // roomdesk, phone, accessory, …
	Mac         string `json:"mac,omitempty"`
	Serial      string `json:"serial,omitempty"`
	Software    string `json:"software,omitempty"`
	LocationID  string `json:"locationId,omitempty"`
	Created     string `json:"created,omitempty"`
}

// Workspace is an item of GET /v1/workspaces?orgId=
// (developer.webex.com/docs/api/v1/workspaces/list-workspaces).
type Workspace struct {
	ID          string `json:"id"`
	OrgID       string `json:"orgId"`
	LocationID  string `json:"locationId,omitempty"`
	DisplayName string `json:"displayName"`
	Type        string `json:"type,omitempty"`
	Calling     *struct {
		Type string `json:"type"`
	} `json:"calling,omitempty"`
}

// Location is an item of GET /v1/locations?orgId=
// (developer.webex.com/docs/api/v1/locations/list-locations).
type Location struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	OrgID   string `json:"orgId"`
	Address struct {
		City    string `json:"city,omitempty"`
		Country string `json:"country"`
	} `json:"address"`
}

// Number is an entry of GET /v1/telephony/config/numbers?orgId= ("phoneNumbers",
// developer.webex.com/docs/api/v1/numbers/get-phone-numbers-for-an-organization-with-given-criterias).
type Number struct {
	PhoneNumber     string `json:"phoneNumber,omitempty"`
	Extension       string `json:"extension,omitempty"`
	State           string `json:"state"`           // ACTIVE, INACTIVE
	PhoneNumberType string `json:"phoneNumberType"` // PRIMARY, ALTERNATE, FAX, DNIS
	MainNumber      bool   `json:"mainNumber"`
	TollFreeNumber  bool   `json:"tollFreeNumber"`
	Location        struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"location"`
	Owner *struct {
		ID        string `json:"id"`
		Type      string `json:"type"` // PEOPLE, PLACE, AUTO_ATTENDANT, CALL_QUEUE, HUNT_GROUP, VIRTUAL_LINE, …
		FirstName string `json:"firstName,omitempty"`
		LastName  string `json:"lastName,omitempty"`
	} `json:"owner,omitempty"`
	IncludedTelephonyTypes string `json:"includedTelephonyTypes,omitempty"` // PSTN_NUMBER
}

// CDR is one record of GET /v1/cdr_feed on the call-history host
// (developer.webex.com/docs/api/v1/reports-detailed-call-history/get-detailed-call-history):
// its keys are the report's column names, with spaces.
type CDR map[string]any
