package demo

var (
	partnerNames = []string{"Northwind Communications", "Contoso Voice Partners", "Fabrikam Cloud Services"}

	nameFirst = []string{"Blue", "North", "Silver", "Granite", "Harbor", "Summit", "Cedar", "Maple", "Atlas", "Orion",
		"Zürich", "Delta", "Evergreen", "Pioneer", "Crescent", "Falcon", "Meridian", "Aurora", "Keystone", "Lakeside",
		"Riverside", "Sterling", "Nordic", "Coastal", "Prairie", "Alpine", "Sahara", "Oasis", "Vertex", "Beacon"}
	nameSecond = []string{"Logistics", "Health", "Dental", "Legal", "Bank", "Insurance", "Foods", "Motors", "Energy", "Retail",
		"Hotels", "Airlines", "Pharma", "Studios", "Robotics", "Textiles", "Shipping", "Clinics", "Schools", "Analytics"}
	nameSuffix = map[string][]string{
		"US":  {"Inc.", "LLC", "Corp.", "Group"},
		"CA":  {"Ltd.", "Inc.", "Ltée", "Co."},
		"EU":  {"GmbH", "S.A.", "B.V.", "AB", "S.r.l."},
		"UAE": {"LLC", "FZ-LLC", "FZE", "PJSC"},
	}
	cities = map[string][]string{
		"US":  {"New York", "Chicago", "Austin", "Denver", "Seattle", "Atlanta"},
		"CA":  {"Toronto", "Montréal", "Vancouver", "Calgary", "Ottawa"},
		"EU":  {"Berlin", "Paris", "Amsterdam", "Stockholm", "Milano", "Dublin"},
		"UAE": {"Dubai", "Abu Dhabi", "Sharjah", "Ajman"},
	}
	countries = map[string][]string{
		"US":  {"US"},
		"CA":  {"CA"},
		"EU":  {"DE", "FR", "NL", "SE", "IT", "IE"},
		"UAE": {"AE"},
	}
	dialCode = map[string]string{"US": "1", "CA": "1", "DE": "49", "FR": "33", "NL": "31", "SE": "46", "IT": "39", "IE": "353", "AE": "971"}

	givenNames  = []string{"alex", "sam", "maria", "li", "omar", "fatima", "jan", "sofia", "noah", "emma", "ravi", "yuki", "lucas", "ana", "ahmed", "chloe"}
	familyNames = []string{"smith", "garcia", "mueller", "nguyen", "haddad", "rossi", "tanaka", "dubois", "kowalski", "silva", "patel", "berg"}
	tags        = []string{"wholesale", "enterprise", "smb", "healthcare", "public-sector", "education", "priority"}
	pstn        = []string{"Cisco PSTN", "Cloud Connected PSTN", "Local Gateway", "Premises-based PSTN"}
)

type deviceModel struct {
	typ, product, firmware string
	hardware               bool
}

var deviceModels = map[string][]deviceModel{
	"desk-phone":   {{"desk-phone", "Cisco 8845", "sip88xx.14-2-1MN-1", true}, {"desk-phone", "Cisco 7841", "sip78xx.14-1-1MN-2", true}, {"desk-phone", "Cisco 9861", "PhoneOS 3.2.1", true}},
	"soft-client":  {{"soft-client", "Webex App", "44.10.0", false}, {"soft-client", "Cisco Jabber", "15.0.3", false}},
	"mobile":       {{"mobile", "Webex Mobile", "44.9.1", false}},
	"room":         {{"room", "Room Kit Mini", "RoomOS 11.20", true}, {"room", "Board Pro 55", "RoomOS 11.20", true}},
	"telepresence": {{"telepresence", "TelePresence IX5000", "IX 8.3.7", true}, {"telepresence", "Webex Room 70 Dual", "RoomOS 11.17", true}},
	"analog":       {{"analog", "Cisco ATA 192", "ATA192.12-0-1", true}},
	"other":        {{"other", "Cisco DECT 6825", "v530", true}, {"other", "Poly VVX 450", "6.4.3", true}},
}
