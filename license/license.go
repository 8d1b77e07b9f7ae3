// Package license owns the license rules of SPEC §6: how users and devices consume
// Knowledge Worker, Common Area and TelePresence licenses, which subscription a
// customer's consumption is attributed to, and compliance.
package license

import (
	"sort"
	"time"

	"tally/model"
)

// DevicesPerKnowledgeWorker is how many non-TelePresence devices one Knowledge
// Worker license covers.
const DevicesPerKnowledgeWorker = 10

// Use is one license consumed.
type Use struct {
	EntityType  string // user or device
	EntityID    string
	LicenseType string
	ClusterID   *string // where it counts (the user's cluster for a user, the device's for a device)
}

// Classify applies §6 to one customer's users and devices and returns one Use per
// license consumed, in a stable order (users by id, then devices by id).
func Classify(users []model.User, devices []model.Device) []Use {
	byUser := map[string][]model.Device{}
	var uses, deviceUses []Use
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
	known := map[string]bool{}
	for _, u := range users {
		known[u.UserID] = true
		uses = append(uses, classifyUser(u.UserID, u.ClusterID, byUser[u.UserID], u.HasExtensionMobility, u.HasMobileClient && u.HasDirectoryProfile)...)
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
		uses = append(uses, classifyUser(id, byUser[id][0].ClusterID, byUser[id], false, false)...)
	}
	sort.SliceStable(deviceUses, func(i, j int) bool { return deviceUses[i].EntityID < deviceUses[j].EntityID })
	return append(uses, deviceUses...)
}

// classifyUser: one Knowledge Worker license if the user has a non-TelePresence
// device, Extension Mobility, or a mobile client with a directory profile; it
// covers 10 devices, and each device beyond the 10th (by device_id) is Common Area.
func classifyUser(userID string, cluster *string, devices []model.Device, em, mobileWithProfile bool) []Use {
	if len(devices) == 0 && !em && !mobileWithProfile {
		return nil
	}
	uses := []Use{{"user", userID, model.KnowledgeWorker, cluster}}
	sort.Slice(devices, func(i, j int) bool { return devices[i].DeviceID < devices[j].DeviceID })
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
