// Package model owns the rows of tally's data contract (SPEC §5): the inventory
// entities, call legs and license-usage facts, with their Parquet column names and
// the checks that decide whether a source row is well-formed.
package model

import "time"

// Regions, in the order tally processes them.
var Regions = []string{"US", "CA", "EU", "UAE"}

// ValidRegion reports whether r is one of Regions.
func ValidRegion(r string) bool {
	for _, x := range Regions {
		if x == r {
			return true
		}
	}
	return false
}

// License types as written in data files.
const (
	KnowledgeWorker = "knowledge_worker"
	CommonArea      = "common_area"
	TelePresence    = "telepresence"
)

// LicenseTypes in report order.
var LicenseTypes = []string{KnowledgeWorker, CommonArea, TelePresence}

// Device types of §5.
const (
	DeskPhone        = "desk-phone"
	Room             = "room"
	TelePresenceType = "telepresence"
	Analog           = "analog"
	Mobile           = "mobile"
	SoftClient       = "soft-client"
	Other            = "other"
)

// DeviceTypes lists every valid device_type.
var DeviceTypes = []string{DeskPhone, Room, TelePresenceType, Analog, Mobile, SoftClient, Other}

// Products a customer can have.
var Products = []string{"calling", "meetings", "messaging", "ucm-cloud", "dedicated-instance"}

// Partner is inventory/partners.
type Partner struct {
	PartnerID   string `parquet:"partner_id"`
	PartnerName string `parquet:"partner_name"`
}

// Customer is inventory/customers (an organisation).
type Customer struct {
	CustomerID       string     `parquet:"customer_id"`
	CustomerName     string     `parquet:"customer_name"`
	PartnerID        string     `parquet:"partner_id"`
	ExternalID       *string    `parquet:"external_id,optional"`
	ManagedBy        string     `parquet:"managed_by"`
	Products         []string   `parquet:"products,list"`
	Tags             []string   `parquet:"tags,list"`
	CreatedAt        time.Time  `parquet:"created_at,timestamp(microsecond:utc)"`
	LastAdminLoginAt *time.Time `parquet:"last_admin_login_at,optional,timestamp(microsecond:utc)"`
}

// Subscription is inventory/subscriptions.
type Subscription struct {
	SubscriptionID       string    `parquet:"subscription_id"`
	SubscriberID         string    `parquet:"subscriber_id"`
	CustomerID           string    `parquet:"customer_id"`
	Product              string    `parquet:"product"`
	IsTrial              bool      `parquet:"is_trial"`
	Status               string    `parquet:"status"`
	CreatedAt            time.Time `parquet:"created_at,timestamp(microsecond:utc)"`
	StartDate            Date      `parquet:"start_date,date"`
	EndDate              Date      `parquet:"end_date,date"`
	AutoRenew            bool      `parquet:"auto_renew"`
	OrderID              string    `parquet:"order_id"`
	LicensesTotal        int64     `parquet:"licenses_total"`
	LicensesAssigned     int64     `parquet:"licenses_assigned"`
	LicensesUsed7d       int64     `parquet:"licenses_used_7d"`
	ProvisioningStatuses []string  `parquet:"provisioning_statuses,list"`
}

// Order is inventory/orders: one row per order × license type.
type Order struct {
	OrderID      string `parquet:"order_id"`
	CustomerID   string `parquet:"customer_id"`
	PartnerID    string `parquet:"partner_id"`
	SubscriberID string `parquet:"subscriber_id"`
	LicenseType  string `parquet:"license_type"`
	Quantity     int64  `parquet:"quantity"`
}

// Cluster is inventory/clusters (a Dedicated Instance / UCM cluster).
type Cluster struct {
	ClusterID  string `parquet:"cluster_id"`
	CustomerID string `parquet:"customer_id"`
	FQDN       string `parquet:"fqdn"`
	Version    string `parquet:"version"`
}

// Server is inventory/servers: a node of a cluster.
type Server struct {
	ServerID   string `parquet:"server_id"`
	ClusterID  string `parquet:"cluster_id"`
	CustomerID string `parquet:"customer_id"`
	Host       string `parquet:"host"`
	Role       string `parquet:"role"`
	Version    string `parquet:"version"`
}

// User is inventory/users.
type User struct {
	UserID               string  `parquet:"user_id"`
	CustomerID           string  `parquet:"customer_id"`
	ClusterID            *string `parquet:"cluster_id,optional"`
	Email                string  `parquet:"email"`
	HasDN                bool    `parquet:"has_dn"`
	HasSNR               bool    `parquet:"has_snr"`
	HasExtensionMobility bool    `parquet:"has_extension_mobility"`
	HasVoicemail         bool    `parquet:"has_voicemail"`
	HasMobileClient      bool    `parquet:"has_mobile_client"`
	HasDirectoryProfile  bool    `parquet:"has_directory_profile"`
}

// Device is inventory/devices.
type Device struct {
	DeviceID     string  `parquet:"device_id"`
	CustomerID   string  `parquet:"customer_id"`
	ClusterID    *string `parquet:"cluster_id,optional"`
	UserID       *string `parquet:"user_id,optional"`
	DeviceType   string  `parquet:"device_type"`
	Product      string  `parquet:"product"`
	MAC          string  `parquet:"mac"`
	Firmware     string  `parquet:"firmware"`
	LocationID   string  `parquet:"location_id"`
	LocationName string  `parquet:"location_name"`
	PhoneNumber  *string `parquet:"phone_number,optional"`
	Extension    *string `parquet:"extension,optional"`
}

// Number is inventory/numbers.
type Number struct {
	Number         string  `parquet:"number"`
	Extension      *string `parquet:"extension,optional"`
	CustomerID     string  `parquet:"customer_id"`
	LocationID     string  `parquet:"location_id"`
	LocationName   string  `parquet:"location_name"`
	Country        string  `parquet:"country"`
	PSTNConnection string  `parquet:"pstn_connection"`
	IsActive       bool    `parquet:"is_active"`
	UserType       string  `parquet:"user_type"`
	NumberType     string  `parquet:"number_type"`
	UserID         *string `parquet:"user_id,optional"`
	UserUUID       *string `parquet:"user_uuid,optional"`
}

// CallLeg is one row of calls/ (a CDR leg).
type CallLeg struct {
	LegID            string    `parquet:"leg_id"`
	CallID           string    `parquet:"call_id"`
	CustomerID       string    `parquet:"customer_id"`
	LocationID       string    `parquet:"location_id"`
	UserID           *string   `parquet:"user_id,optional"`
	DeviceType       string    `parquet:"device_type"`
	StartTime        time.Time `parquet:"start_time,timestamp(microsecond:utc)"`
	DurationSeconds  int64     `parquet:"duration_seconds"`
	Direction        string    `parquet:"direction"`
	IsVideo          bool      `parquet:"is_video"`
	AudioJitterMs    float64   `parquet:"audio_jitter_ms"`
	AudioLatencyMs   float64   `parquet:"audio_latency_ms"`
	AudioLossPct     float64   `parquet:"audio_loss_pct"`
	VideoJitterMs    *float64  `parquet:"video_jitter_ms,optional"`
	VideoLatencyMs   *float64  `parquet:"video_latency_ms,optional"`
	VideoLossPct     *float64  `parquet:"video_loss_pct,optional"`
	RoutedVia        *string   `parquet:"routed_via,optional"`
	QueueOutcome     *string   `parquet:"queue_outcome,optional"`
	QueueWaitSeconds *int64    `parquet:"queue_wait_seconds,optional"`
}

// LicenseUse is usage/license: one row per license consumed.
type LicenseUse struct {
	CustomerID     string  `parquet:"customer_id"`
	SubscriptionID *string `parquet:"subscription_id,optional"`
	SubscriberID   *string `parquet:"subscriber_id,optional"`
	ClusterID      *string `parquet:"cluster_id,optional"`
	EntityType     string  `parquet:"entity_type"`
	EntityID       string  `parquet:"entity_id"`
	LicenseType    string  `parquet:"license_type"`
}

// SubscriptionUsage is usage/subscription: entitled vs consumed per license type.
type SubscriptionUsage struct {
	SubscriptionID string `parquet:"subscription_id"`
	SubscriberID   string `parquet:"subscriber_id"`
	CustomerID     string `parquet:"customer_id"`
	PartnerID      string `parquet:"partner_id"`
	LicenseType    string `parquet:"license_type"`
	Entitled       int64  `parquet:"entitled"`
	Consumed       int64  `parquet:"consumed"`
	Compliance     string `parquet:"compliance"`
}

// ClusterUsage is usage/cluster: the Dedicated Instance view.
type ClusterUsage struct {
	ClusterID       string `parquet:"cluster_id"`
	FQDN            string `parquet:"fqdn"`
	Publisher       string `parquet:"publisher"`
	CustomerID      string `parquet:"customer_id"`
	KnowledgeWorker int64  `parquet:"knowledge_worker"`
	CommonArea      int64  `parquet:"common_area"`
	TelePresence    int64  `parquet:"telepresence"`
}

// CustomerUsage is usage/customer.
type CustomerUsage struct {
	CustomerID   string  `parquet:"customer_id"`
	PartnerID    string  `parquet:"partner_id"`
	SubscriberID *string `parquet:"subscriber_id,optional"`
	LicenseType  string  `parquet:"license_type"`
	Entitled     int64   `parquet:"entitled"`
	Consumed     int64   `parquet:"consumed"`
}

// Str returns a pointer to s (for optional columns).
func Str(s string) *string { return &s }

// Deref returns *p or "" when p is nil.
func Deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Date is a calendar date (UTC) stored as days since 1970-01-01: Parquet's DATE.
// (parquet-go v0.32 mis-encodes time.Time fields tagged "date", so dates are
// kept in this form.)
type Date int32

// DateOf is the UTC date of t.
func DateOf(t time.Time) Date {
	t = t.UTC()
	return Date(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// Time is midnight UTC of d.
func (d Date) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

func (d Date) String() string { return d.Time().Format("2006-01-02") }

// MarshalJSON writes the date as "2006-01-02".
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }
