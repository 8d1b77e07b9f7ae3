package webex

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"tally/model"
)

// Organization is a managed customer organisation as GET /v1/organizations
// lists it (developer.webex.com/docs/api/v1/organizations: id, displayName,
// created).
type Organization struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Created     string `json:"created"`
}

// OrgUUID is the standard id inside a base64 Webex organization id: decoding
// gives ciscospark://<cluster>/ORGANIZATION/<uuid> (developer.webex.com/docs/
// api/v1/identity-organization, "For handling organizationId"). A plain UUID is
// returned as it is.
func OrgUUID(id string) (string, error) { return UUIDOf(id, "ORGANIZATION") }

// UUIDOf is the UUID inside a base64 Webex id of kind (ORGANIZATION, PEOPLE,
// DEVICE, PLACE, …), or a plain UUID as it is.
func UUIDOf(id, kind string) (string, error) {
	if looksLikeUUID(id) {
		return strings.ToLower(id), nil
	}
	tail, err := decodeID(id, kind)
	if err != nil {
		return "", err
	}
	if !looksLikeUUID(tail) {
		return "", fmt.Errorf("%s id %q does not end in a UUID", strings.ToLower(kind), id)
	}
	return strings.ToLower(tail), nil
}

// decodeID is what follows /<kind>/ in a base64 ciscospark:// id.
func decodeID(id, kind string) (string, error) {
	s, err := unbase64(id)
	if err != nil {
		return "", fmt.Errorf("%s id %q is neither a UUID nor base64", strings.ToLower(kind), id)
	}
	if strings.HasPrefix(s, "ciscospark://") {
		// The reference spells some kinds both ways: /workspaces ids decode to
		// …/PLACES/<uuid>, telephony owner ids to …/PLACE/<uuid>; both are the
		// same workspace.
		for _, k := range kindSpellings(kind) {
			marker := "/" + k + "/"
			if i := strings.LastIndex(s, marker); i >= 0 && i+len(marker) < len(s) {
				return s[i+len(marker):], nil
			}
		}
	}
	return "", fmt.Errorf("%s id %q decodes to %q, not ciscospark://…/%s/<id>", strings.ToLower(kind), id, s, kind)
}

// kindSpellings are kind as given, then its plural or singular.
func kindSpellings(kind string) []string {
	if strings.HasSuffix(kind, "S") {
		return []string{kind, strings.TrimSuffix(kind, "S")}
	}
	return []string{kind, kind + "S"}
}

// idUUID is the UUID an id names whatever its kind (the id itself when it is
// neither a UUID nor a ciscospark:// id): owners are matched across kinds.
func idUUID(id string) string {
	if looksLikeUUID(id) {
		return strings.ToLower(id)
	}
	s, err := unbase64(id)
	if i := strings.LastIndex(s, "/"); err == nil && strings.HasPrefix(s, "ciscospark://") && looksLikeUUID(s[i+1:]) {
		return strings.ToLower(s[i+1:])
	}
	return id
}

// unbase64 decodes an id the API spells in URL-safe or standard base64, with
// or without padding.
func unbase64(id string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(id, "="))
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(id, "="))
	}
	return string(raw), err
}

func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// CustomerOf maps one organization to a §5 customer of partnerID. Fields the
// API does not give (products, managed by, tags, last admin login) are left
// for other endpoints to fill.
func CustomerOf(raw json.RawMessage, partnerID string) (model.Customer, error) {
	var o Organization
	if err := json.Unmarshal(raw, &o); err != nil {
		return model.Customer{}, fmt.Errorf("webex: organization: %w", err)
	}
	id, err := OrgUUID(o.ID)
	if err != nil {
		return model.Customer{}, fmt.Errorf("webex: %w", err)
	}
	if strings.TrimSpace(o.DisplayName) == "" {
		return model.Customer{}, fmt.Errorf("webex: organization %s has no displayName", id)
	}
	created, err := time.Parse(time.RFC3339Nano, o.Created)
	if err != nil {
		return model.Customer{}, fmt.Errorf("webex: organization %s: created %q is not a timestamp", id, o.Created)
	}
	return model.Customer{CustomerID: id, CustomerName: o.DisplayName, PartnerID: partnerID, ManagedBy: "partner",
		CreatedAt: created.UTC().Truncate(time.Microsecond)}, nil
}
