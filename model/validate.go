package model

import (
	"fmt"
	"net/mail"
	"slices"
)

var statuses = []string{"active", "cancelled", "suspended", "trial"}

// Validator is a source row that can tell whether it is well-formed.
type Validator interface {
	Validate() error
}

func need(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	return nil
}

// isUUID reports whether v is a lower-case UUID (8-4-4-4-12 hex digits),
// without a regexp: sync checks every id of every row.
func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// isMAC reports whether v is 12 upper-case hex digits (a regexp was a tenth
// of a sync's validation).
func isMAC(v string) bool {
	if len(v) != 12 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// isE164 reports whether v is E.164: "+", a digit 1-9, then 6 to 14 digits.
func isE164(v string) bool {
	if len(v) < 8 || len(v) > 16 || v[0] != '+' || v[1] < '1' || v[1] > '9' {
		return false
	}
	for i := 2; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func uuid(field, v string) error {
	if !isUUID(v) {
		return fmt.Errorf("%s %q is not a lower-case UUID", field, v)
	}
	return nil
}

func first(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// Validate checks a partner row.
func (p *Partner) Validate() error {
	return first(need("partner_id", p.PartnerID), need("partner_name", p.PartnerName))
}

// Validate checks a customer row.
func (c *Customer) Validate() error {
	if err := first(uuid("customer_id", c.CustomerID), need("customer_name", c.CustomerName), need("partner_id", c.PartnerID)); err != nil {
		return err
	}
	if c.ManagedBy != "partner" && c.ManagedBy != "external-admin" {
		return fmt.Errorf("managed_by %q is not partner or external-admin", c.ManagedBy)
	}
	for _, p := range c.Products {
		if !slices.Contains(Products, p) {
			return fmt.Errorf("unknown product %q", p)
		}
	}
	if c.CreatedAt.IsZero() {
		return fmt.Errorf("created_at is missing")
	}
	return nil
}

// Validate checks a subscription row.
func (s *Subscription) Validate() error {
	if err := first(need("subscription_id", s.SubscriptionID), need("subscriber_id", s.SubscriberID), uuid("customer_id", s.CustomerID), need("product", s.Product)); err != nil {
		return err
	}
	if !slices.Contains(statuses, s.Status) {
		return fmt.Errorf("status %q is not one of %v", s.Status, statuses)
	}
	if s.EndDate < s.StartDate {
		return fmt.Errorf("end_date %s is before start_date %s", s.EndDate, s.StartDate)
	}
	if s.LicensesTotal < 0 || s.LicensesAssigned < 0 || s.LicensesUsed7d < 0 {
		return fmt.Errorf("negative license count")
	}
	return nil
}

// Validate checks an order row.
func (o *Order) Validate() error {
	if err := first(need("order_id", o.OrderID), uuid("customer_id", o.CustomerID), need("subscriber_id", o.SubscriberID)); err != nil {
		return err
	}
	if !slices.Contains(LicenseTypes, o.LicenseType) {
		return fmt.Errorf("license_type %q is not one of %v", o.LicenseType, LicenseTypes)
	}
	if o.Quantity < 0 {
		return fmt.Errorf("quantity %d is negative", o.Quantity)
	}
	return nil
}

// Validate checks a cluster row.
func (c *Cluster) Validate() error {
	return first(need("cluster_id", c.ClusterID), uuid("customer_id", c.CustomerID), need("fqdn", c.FQDN), need("version", c.Version))
}

// Validate checks a server row.
func (s *Server) Validate() error {
	if err := first(need("server_id", s.ServerID), need("cluster_id", s.ClusterID), need("host", s.Host)); err != nil {
		return err
	}
	if s.Role != "publisher" && s.Role != "subscriber" {
		return fmt.Errorf("role %q is not publisher or subscriber", s.Role)
	}
	return nil
}

// Validate checks a user row.
func (u *User) Validate() error {
	if err := first(uuid("user_id", u.UserID), uuid("customer_id", u.CustomerID)); err != nil {
		return err
	}
	if _, err := mail.ParseAddress(u.Email); err != nil {
		return fmt.Errorf("email %q is not an address", u.Email)
	}
	return nil
}

// Validate checks a device row.
func (d *Device) Validate() error {
	if err := first(need("device_id", d.DeviceID), uuid("customer_id", d.CustomerID), need("location_id", d.LocationID)); err != nil {
		return err
	}
	if !slices.Contains(DeviceTypes, d.DeviceType) {
		return fmt.Errorf("device_type %q is not one of %v", d.DeviceType, DeviceTypes)
	}
	if d.MAC != "" && !isMAC(d.MAC) {
		return fmt.Errorf("mac %q is not 12 upper-case hex digits", d.MAC)
	}
	if d.UserID != nil {
		return uuid("user_id", *d.UserID)
	}
	return nil
}

// Validate checks a phone number row.
func (n *Number) Validate() error {
	if !isE164(n.Number) {
		return fmt.Errorf("number %q is not E.164", n.Number)
	}
	return first(uuid("customer_id", n.CustomerID), need("location_id", n.LocationID), need("country", n.Country))
}

// Validate checks a call leg.
func (c *CallLeg) Validate() error {
	if err := first(need("leg_id", c.LegID), need("call_id", c.CallID), uuid("customer_id", c.CustomerID)); err != nil {
		return err
	}
	if c.DurationSeconds < 0 {
		return fmt.Errorf("duration_seconds %d is negative", c.DurationSeconds)
	}
	if c.AudioJitterMs < 0 || c.AudioLatencyMs < 0 || c.AudioLossPct < 0 || c.AudioLossPct > 100 {
		return fmt.Errorf("audio quality out of range (jitter %.1f, latency %.1f, loss %.1f)", c.AudioJitterMs, c.AudioLatencyMs, c.AudioLossPct)
	}
	if c.StartTime.IsZero() {
		return fmt.Errorf("start_time is missing")
	}
	return nil
}
