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
			cd.Sort()
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

// fields are the CustomerDay slices of the per-customer entities.
var fields = map[string]string{"subscriptions": "Subscriptions", "orders": "Orders", "clusters": "Clusters", "servers": "Servers",
	"users": "Users", "devices": "Devices", "numbers": "Numbers", "calls": "Calls"}

func appendTo(cd *source.CustomerDay, entity string, v reflect.Value) {
	f := reflect.ValueOf(cd).Elem().FieldByName(fields[entity])
	f.Set(reflect.Append(f, v))
}
