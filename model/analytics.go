package model

// The analytics/ tables (SPEC §7), one file per table, region and week. Trend
// columns are lists oldest first, with null for a week that was not published.

// CustomerStatus is analytics/customer_status: one row per status that holds.
type CustomerStatus struct {
	PartnerID    string `parquet:"partner_id"`
	CustomerID   string `parquet:"customer_id"`
	CustomerName string `parquet:"customer_name"`
	Status       string `parquet:"status"`
}

// SubscriptionStatus is analytics/subscription_status.
type SubscriptionStatus struct {
	PartnerID          string   `parquet:"partner_id"`
	CustomerID         string   `parquet:"customer_id"`
	SubscriptionID     string   `parquet:"subscription_id"`
	SubscriberID       string   `parquet:"subscriber_id"`
	Product            string   `parquet:"product"`
	Status             string   `parquet:"status"`
	ProvisioningStatus string   `parquet:"provisioning_status"`
	EndDate            Date     `parquet:"end_date,date"`
	LicensesTotal      int64    `parquet:"licenses_total"`
	LicensesAssigned   int64    `parquet:"licenses_assigned"`
	LicensesUsed7d     int64    `parquet:"licenses_used_7d"`
	AssignmentPct      *float64 `parquet:"assignment_pct,optional"`
	UsagePct           *float64 `parquet:"usage_pct,optional"`
}

// KPIs is analytics/kpis: one row per partner, with each table's KPIs.
type KPIs struct {
	PartnerID             string `parquet:"partner_id"`
	TotalCustomers        int64  `parquet:"total_customers"`
	ApproachingExpiration int64  `parquet:"approaching_expiration"`
	ApproachingRenewal    int64  `parquet:"approaching_renewal"`
	LowAssignment         int64  `parquet:"low_assignment"`
	OverLicenseLimit      int64  `parquet:"over_license_limit"`

	RecentlyAddedCustomers int64 `parquet:"recently_added_customers"`
	RecentlyAddedLicenses  int64 `parquet:"recently_added_licenses"`

	ExpiringCustomers     int64    `parquet:"expiring_customers"`
	ExpiringAssignmentPct *float64 `parquet:"expiring_assignment_pct,optional"`
	ExpiringUsagePct      *float64 `parquet:"expiring_usage_pct,optional"`

	RenewingCustomers     int64    `parquet:"renewing_customers"`
	RenewingAssignmentPct *float64 `parquet:"renewing_assignment_pct,optional"`
	RenewingUsagePct      *float64 `parquet:"renewing_usage_pct,optional"`

	LowAssignmentPct               *float64 `parquet:"low_assignment_pct,optional"`
	LowAssignmentUsageWhenAssigned *float64 `parquet:"low_assignment_usage_when_assigned_pct,optional"`
	LowAssignmentUnassigned        int64    `parquet:"low_assignment_unassigned"`

	OverageCustomers      int64    `parquet:"overage_customers"`
	OverageLicenses       int64    `parquet:"overage_licenses"`
	OverageAvgPerCustomer *float64 `parquet:"overage_avg_per_customer,optional"`

	CallingUsers      int64    `parquet:"calling_users"`
	CallingUsersTrend []*int64 `parquet:"calling_users_trend,list" parquet-element:",optional"`
}

// RecentlyAdded is analytics/recently_added: customers added in the last 90 days.
type RecentlyAdded struct {
	PartnerID              string `parquet:"partner_id"`
	CustomerID             string `parquet:"customer_id"`
	CustomerName           string `parquet:"customer_name"`
	SubscriptionID         string `parquet:"subscription_id"`
	SubscriberID           string `parquet:"subscriber_id"`
	DaysSinceAdded         int64  `parquet:"days_since_added"`
	TotalLicenses          int64  `parquet:"total_licenses"`
	Used                   int64  `parquet:"used"`
	Assigned               int64  `parquet:"assigned"`
	Available              int64  `parquet:"available"`
	WeeklyAssignmentChange *int64 `parquet:"weekly_assignment_change,optional"`
	WeeklyUsageChange      *int64 `parquet:"weekly_usage_change,optional"`
}

// Expiring is analytics/expiring and analytics/renewing (DaysTo is days to
// expiry or to renewal).
type Expiring struct {
	PartnerID      string     `parquet:"partner_id"`
	CustomerID     string     `parquet:"customer_id"`
	CustomerName   string     `parquet:"customer_name"`
	SubscriptionID string     `parquet:"subscription_id"`
	SubscriberID   string     `parquet:"subscriber_id"`
	DaysTo         int64      `parquet:"days_to"`
	TotalLicenses  int64      `parquet:"total_licenses"`
	Used           int64      `parquet:"used"`
	Assigned       int64      `parquet:"assigned"`
	Available      int64      `parquet:"available"`
	Usage3Months   []*float64 `parquet:"usage_3_months,list" parquet-element:",optional"`
}

// LowAssignment is analytics/low_assignment.
type LowAssignment struct {
	PartnerID              string   `parquet:"partner_id"`
	CustomerID             string   `parquet:"customer_id"`
	CustomerName           string   `parquet:"customer_name"`
	SubscriptionID         string   `parquet:"subscription_id"`
	SubscriberID           string   `parquet:"subscriber_id"`
	MonthsSinceAdded       int64    `parquet:"months_since_added"`
	Assigned               int64    `parquet:"assigned"`
	AssignedPct            *float64 `parquet:"assigned_pct,optional"`
	TotalLicenses          int64    `parquet:"total_licenses"`
	Used                   int64    `parquet:"used"`
	Available              int64    `parquet:"available"`
	WeeklyAssignmentChange *int64   `parquet:"weekly_assignment_change,optional"`
}

// Overage is analytics/overage.
type Overage struct {
	PartnerID       string   `parquet:"partner_id"`
	CustomerID      string   `parquet:"customer_id"`
	CustomerName    string   `parquet:"customer_name"`
	SubscriptionID  string   `parquet:"subscription_id"`
	SubscriberID    string   `parquet:"subscriber_id"`
	MonthsRemaining int64    `parquet:"months_remaining"`
	AutoRenew       bool     `parquet:"auto_renew"`
	TotalLicenses   int64    `parquet:"total_licenses"`
	Assigned        int64    `parquet:"assigned"`
	AssignedPct     *float64 `parquet:"assigned_pct,optional"`
	Used            int64    `parquet:"used"`
	UsedPct         *float64 `parquet:"used_pct,optional"`
	Overage         int64    `parquet:"overage"`
}

// CallingUser is analytics/calling_users: users ranked by call volume.
type CallingUser struct {
	PartnerID      string `parquet:"partner_id"`
	CustomerID     string `parquet:"customer_id"`
	UserID         string `parquet:"user_id"`
	Calls          int64  `parquet:"calls"`
	Legs           int64  `parquet:"legs"`
	Minutes        int64  `parquet:"minutes"`
	RankInCustomer int64  `parquet:"rank_in_customer"`
}

// CallingUsage is analytics/calling_usage: per customer.
type CallingUsage struct {
	PartnerID    string   `parquet:"partner_id"`
	CustomerID   string   `parquet:"customer_id"`
	CustomerName string   `parquet:"customer_name"`
	CallingUsers int64    `parquet:"calling_users"`
	Calls        int64    `parquet:"calls"`
	Legs         int64    `parquet:"legs"`
	Minutes      int64    `parquet:"minutes"`
	VideoMinutes int64    `parquet:"video_minutes"`
	CallsTrend   []*int64 `parquet:"calls_trend,list" parquet-element:",optional"`
}

// CallQuality is analytics/call_quality: per customer and endpoint type.
type CallQuality struct {
	PartnerID    string     `parquet:"partner_id"`
	CustomerID   string     `parquet:"customer_id"`
	EndpointType string     `parquet:"endpoint_type"`
	Legs         int64      `parquet:"legs"`
	PoorLegs     int64      `parquet:"poor_legs"`
	PoorPct      *float64   `parquet:"poor_pct,optional"`
	PoorPctTrend []*float64 `parquet:"poor_pct_trend,list" parquet-element:",optional"`
}

// CallQueues is analytics/call_queues: per customer with call queues.
type CallQueues struct {
	PartnerID             string   `parquet:"partner_id"`
	CustomerID            string   `parquet:"customer_id"`
	Calls                 int64    `parquet:"calls"`
	Answered              int64    `parquet:"answered"`
	Abandoned             int64    `parquet:"abandoned"`
	TimedOut              int64    `parquet:"timed_out"`
	Overflowed            int64    `parquet:"overflowed"`
	Forwarded             int64    `parquet:"forwarded"`
	AvgAnswerSeconds      *float64 `parquet:"avg_answer_seconds,optional"`
	AvgAbandonWaitSeconds *float64 `parquet:"avg_abandon_wait_seconds,optional"`
	AbandonRate           *float64 `parquet:"abandon_rate,optional"`
}
