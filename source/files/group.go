package files

import (
	"fmt"
	"reflect"
	"sort"

	"tally/model"
	"tally/source"
)

// group sorts the day's rows into customers: a customer's rows come from its
// region's partition only. A row delivered under another region, or for a
// customer the day does not have, is rejected (residency: never written to
// another region's storage).
func (d *day) group(rows map[string]map[string][]reflect.Value) {
	seenPartner := map[string]bool{}
	for _, region := range model.Regions {
		for _, v := range rows["partners"][region] {
			p := v.Interface().(model.Partner)
			if !seenPartner[p.PartnerID] {
				seenPartner[p.PartnerID] = true
				d.partners = append(d.partners, p)
			}
		}
	}
	sort.Slice(d.partners, func(i, j int) bool { return d.partners[i].PartnerID < d.partners[j].PartnerID })

	home := map[string]string{} // customer → region
	byID := map[string]*source.CustomerDay{}
	for _, region := range model.Regions {
		for _, v := range rows["customers"][region] {
			c := v.Interface().(model.Customer)
			if r, dup := home[c.CustomerID]; dup {
				d.reject(region, "customers", v, fmt.Sprintf("customer %s is delivered twice (also under region=%s)", c.CustomerID, r))
				continue
			}
			home[c.CustomerID] = region
			cd := &source.CustomerDay{Region: region, Customer: c}
			byID[c.CustomerID] = cd
			d.customers[region] = append(d.customers[region], cd)
		}
		sort.Slice(d.customers[region], func(i, j int) bool {
			return d.customers[region][i].Customer.CustomerID < d.customers[region][j].Customer.CustomerID
		})
	}
	for _, entity := range Entities[2:] {
		for _, region := range model.Regions {
			for _, v := range rows[entity][region] {
				id := v.FieldByName("CustomerID").String()
				cd, ok := byID[id]
				switch {
				case !ok:
					d.reject(region, entity, v, fmt.Sprintf("customer %s is not in the day's customers", id))
				case cd.Region != region:
					d.reject(region, entity, v, fmt.Sprintf("delivered under region=%s, but customer %s is in %s (a row never goes to another region)", region, id, cd.Region))
				default:
					appendTo(cd, entity, v)
				}
			}
		}
	}
	for _, cds := range d.customers {
		for _, cd := range cds {
			sortCustomer(cd)
		}
	}
}

func (d *day) reject(region, entity string, v reflect.Value, reason string) {
	d.rejected[region] = append(d.rejected[region], source.Rejected{Entity: entity, Reason: reason, Row: rowOf(v)})
}

func rowOf(v reflect.Value) map[string]any {
	sc := schemaFor(v.Type())
	m := map[string]any{}
	for _, c := range sc.columns {
		m[c.Name] = c.jsonValue(v)
	}
	return m
}

func schemaFor(t reflect.Type) *schema {
	for _, sc := range Schemas {
		if sc.typ == t {
			return sc
		}
	}
	panic("files: no schema for " + t.String())
}

func appendTo(cd *source.CustomerDay, entity string, v reflect.Value) {
	switch entity {
	case "subscriptions":
		cd.Subscriptions = append(cd.Subscriptions, v.Interface().(model.Subscription))
	case "orders":
		cd.Orders = append(cd.Orders, v.Interface().(model.Order))
	case "clusters":
		cd.Clusters = append(cd.Clusters, v.Interface().(model.Cluster))
	case "servers":
		cd.Servers = append(cd.Servers, v.Interface().(model.Server))
	case "users":
		cd.Users = append(cd.Users, v.Interface().(model.User))
	case "devices":
		cd.Devices = append(cd.Devices, v.Interface().(model.Device))
	case "numbers":
		cd.Numbers = append(cd.Numbers, v.Interface().(model.Number))
	case "calls":
		cd.Calls = append(cd.Calls, v.Interface().(model.CallLeg))
	}
}

// sortCustomer orders each of a customer's slices by its key, as every source does.
func sortCustomer(cd *source.CustomerDay) {
	sort.SliceStable(cd.Clusters, func(i, j int) bool { return cd.Clusters[i].ClusterID < cd.Clusters[j].ClusterID })
	sort.SliceStable(cd.Servers, func(i, j int) bool { return cd.Servers[i].ServerID < cd.Servers[j].ServerID })
	sort.SliceStable(cd.Users, func(i, j int) bool { return cd.Users[i].UserID < cd.Users[j].UserID })
	sort.SliceStable(cd.Devices, func(i, j int) bool { return cd.Devices[i].DeviceID < cd.Devices[j].DeviceID })
	sort.SliceStable(cd.Numbers, func(i, j int) bool { return cd.Numbers[i].Number < cd.Numbers[j].Number })
	sort.SliceStable(cd.Subscriptions, func(i, j int) bool {
		a, b := cd.Subscriptions[i], cd.Subscriptions[j]
		return a.SubscriptionID+a.SubscriberID < b.SubscriptionID+b.SubscriberID
	})
	sort.SliceStable(cd.Orders, func(i, j int) bool {
		a, b := cd.Orders[i], cd.Orders[j]
		return a.OrderID+a.LicenseType < b.OrderID+b.LicenseType
	})
	sort.SliceStable(cd.Calls, func(i, j int) bool { return cd.Calls[i].LegID < cd.Calls[j].LegID })
}
