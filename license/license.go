// Package license owns the license rules of SPEC §6: how users and devices consume
// Knowledge Worker, Common Area and TelePresence licenses, which subscription a
// customer's consumption is attributed to, and compliance.
package license

import (
	"slices"
	"sort"
	"strings"
	"time"

	"tally/model"
)

// DevicesPerKnowledgeWorker is how many non-TelePresence devices one Knowledge
// Worker license covers.
const DevicesPerKnowledgeWorker = 10

// User is what the rules look at of an inventory/users row. license-usage
// reads only these columns: decoding whole rows was most of its CPU.
type User struct {
	UserID               string  `parquet:"user_id"`
	CustomerID           string  `parquet:"customer_id"`
	ClusterID            *string `parquet:"cluster_id,optional"`
	HasExtensionMobility bool    `parquet:"has_extension_mobility"`
	HasMobileClient      bool    `parquet:"has_mobile_client"`
	HasDirectoryProfile  bool    `parquet:"has_directory_profile"`
}

// Device is what the rules look at of an inventory/devices row.
type Device struct {
	DeviceID   string  `parquet:"device_id"`
	CustomerID string  `parquet:"customer_id"`
	ClusterID  *string `parquet:"cluster_id,optional"`
	UserID     *string `parquet:"user_id,optional"`
	DeviceType string  `parquet:"device_type"`
}

// Use is one license consumed.
type Use struct {
	EntityType  string // user or device
	EntityID    string
	LicenseType string
	ClusterID   *string // where it counts (the user's cluster for a user, the device's for a device)
}

// Classify applies §6 to one customer's users and devices and returns one Use per
// license consumed, in a stable order (users by id, then devices by id).
func Classify(users []User, devices []Device) []Use {
	byUser := make(map[string][]Device, len(users))
	uses := make([]Use, 0, len(users)+len(devices))
	var deviceUses []Use
	for _, d := range devices {
		switch {
		case d.DeviceType == model.TelePresenceType:
			// Every TelePresence device consumes one TelePresence license, whoever it belongs to.
			deviceUses = append(deviceUses, Use{"device", d.DeviceID, model.TelePresence, d.ClusterID})
		case d.UserID == nil:
			// A shared non-TelePresence device consumes one Common Area license.
			deviceUses = append(deviceUses, Use{"device", d.DeviceID, model.CommonArea, d.ClusterID})
		default:
			byUser[*d.UserID] = append(byUser[*d.UserID], d)
		}
	}
	known := make(map[string]bool, len(users))
	for _, u := range users {
		known[u.UserID] = true
		uses = classifyUser(uses, u.UserID, u.ClusterID, byUser[u.UserID], u.HasExtensionMobility, u.HasMobileClient && u.HasDirectoryProfile)
	}
	// Devices whose owner is not in the user list (e.g. the user row was
	// quarantined) still count, as that owner's, on the device's cluster.
	var orphans []string
	for id := range byUser {
		if !known[id] {
			orphans = append(orphans, id)
		}
	}
	sort.Strings(orphans)
	for _, id := range orphans {
		uses = classifyUser(uses, id, byUser[id][0].ClusterID, byUser[id], false, false)
	}
	slices.SortStableFunc(deviceUses, func(a, b Use) int { return strings.Compare(a.EntityID, b.EntityID) })
	return append(uses, deviceUses...)
}

// classifyUser: one Knowledge Worker license if the user has a non-TelePresence
// device, Extension Mobility, or a mobile client with a directory profile; it
// covers 10 devices, and each device beyond the 10th (by device_id) is Common Area.
func classifyUser(uses []Use, userID string, cluster *string, devices []Device, em, mobileWithProfile bool) []Use {
	if len(devices) == 0 && !em && !mobileWithProfile {
		return uses
	}
	uses = append(uses, Use{"user", userID, model.KnowledgeWorker, cluster})
	slices.SortFunc(devices, func(a, b Device) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	for i, d := range devices {
		if i >= DevicesPerKnowledgeWorker {
			uses = append(uses, Use{"device", d.DeviceID, model.CommonArea, d.ClusterID})
		}
	}
	return uses
}

// Compliance compares consumed with entitled: "over" when consumed > entitled,
// "under" when consumed < threshold × entitled, else "ok".
func Compliance(entitled, consumed int64, underThreshold float64) string {
	switch {
	case consumed > entitled:
		return "over"
	case float64(consumed) < underThreshold*float64(entitled):
		return "under"
	}
	return "ok"
}

// IsCalling reports whether a product is a Calling product.
func IsCalling(product string) bool {
	return product == "calling" || product == "ucm-cloud" || product == "dedicated-instance"
}

// Attribute picks the subscription a customer's consumption counts against on day:
// its active calling subscription (the latest started if several), or its trial if
// it has only a trial; nil when it has neither.
func Attribute(subs []model.Subscription, day time.Time) *model.Subscription {
	var best, trial *model.Subscription
	later := func(a, b *model.Subscription) bool {
		return b == nil || a.StartDate > b.StartDate || (a.StartDate == b.StartDate && a.SubscriberID > b.SubscriberID)
	}
	today := model.DateOf(day)
	for i := range subs {
		s := &subs[i]
		if !IsCalling(s.Product) || s.EndDate < today {
			continue
		}
		switch {
		case s.IsTrial && s.Status == "trial":
			if later(s, trial) {
				trial = s
			}
		case !s.IsTrial && s.Status == "active":
			if later(s, best) {
				best = s
			}
		}
	}
	if best != nil {
		return best
	}
	return trial
}
