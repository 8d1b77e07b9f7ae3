package subscriptions

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestAnUnsubscribeTokenHasOneSpellingOnlyAndItsSignatureIsChecked(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok := Token(key, "flex", "X@Example.com")
	if sub, addr, err := ParseToken(key, tok); err != nil || sub != "flex" || addr != "x@example.com" {
		t.Fatalf("the token itself: %q %q %v", sub, addr, err)
	}
	// The same bytes spelled another way: the signature's last character
	// with other (unused) trailing bits decodes to the same MAC in lenient base64.
	p, sig, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(sig)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	other := sig[:len(sig)-1] + string(alphabet[last^1])
	if again, err := base64.RawURLEncoding.DecodeString(other); err != nil || string(again) != string(raw) {
		t.Fatalf("the test's other spelling does not decode to the same bytes: %v", err)
	}
	for name, bad := range map[string]string{
		"another spelling of the signature": p + "." + other,
		"another key's signature":           Token([]byte("another key, another signature!"), "flex", "x@example.com"),
		"a changed address":                 base64.RawURLEncoding.EncodeToString([]byte("flex\ny@example.com")) + "." + sig,
		"no signature":                      p,
		"padding":                           p + "=." + sig,
	} {
		if _, _, err := ParseToken(key, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
