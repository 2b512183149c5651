package signature

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	type tc struct {
		name  string
		input string
		want  ed25519.PublicKey // nil: an error is expected
	}
	var tests []tc
	for name, k := range vf.Keys {
		want := vf.PublicKey(t, name)
		if k.PublicPEM != "" {
			tests = append(tests,
				tc{name: name + " PEM", input: k.PublicPEM, want: want},
				tc{name: name + " PEM with CRLF", input: strings.ReplaceAll(k.PublicPEM, "\n", "\r\n"), want: want},
				tc{name: name + " PEM with trailing text", input: k.PublicPEM + "garbage"},
				tc{name: name + " PEM twice", input: k.PublicPEM + k.PublicPEM},
			)
		}
		if k.PublicPEMEscaped != "" {
			tests = append(tests, tc{name: name + " PEM with literal \\n", input: k.PublicPEMEscaped, want: want})
		}
		tests = append(tests,
			tc{name: name + " base64", input: k.PublicBase64, want: want},
			tc{name: name + " base64 with surrounding space", input: " " + k.PublicBase64 + "\n", want: want},
			tc{name: name + " base64 without padding", input: strings.TrimRight(k.PublicBase64, "=")},
		)
	}
	tk := vf.Keys["rfc9421_test_key_ed25519"]
	hexCovered := false
	for i, bad := range vf.InvalidVerificationKeys {
		tests = append(tests, tc{name: fmt.Sprintf("invalid_verification_keys[%d] %q", i, bad), input: bad})
		if bad == tk.PublicHex {
			hexCovered = true
		}
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !hexCovered {
		tests = append(tests, tc{name: "hex", input: tk.PublicHex})
	}
	tests = append(tests,
		tc{name: "ECDSA public key PEM", input: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))},
		tc{name: "PEM of the wrong type", input: strings.ReplaceAll(tk.PublicPEM, "PUBLIC KEY", "RSA PUBLIC KEY")},
		tc{name: "private key PEM", input: tk.PrivatePEM},
		tc{name: "PEM with bad contents", input: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		tc{name: "truncated PEM", input: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P"},
		tc{name: "base64 of 31 bytes", input: base64.StdEncoding.EncodeToString(make([]byte, 31))},
		tc{name: "base64 of 33 bytes", input: base64.StdEncoding.EncodeToString(make([]byte, 33))},
		tc{name: "base64 of the seed plus key", input: base64.StdEncoding.EncodeToString(vf.PrivateKey(t, "rfc9421_test_key_ed25519"))},
		tc{name: "blank", input: "  \n"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got, err := ParsePublicKey(tt.input)
			if tt.want != nil {
				is.NoErr(err)
				is.Equal(got, tt.want)
				return
			}
			is.True(err != nil) // invalid key accepted
			msg := err.Error()
			is.True(strings.HasPrefix(msg, "signature: "))            // package prefix
			is.True(strings.Contains(msg, `want a PEM "PUBLIC KEY"`)) // says what is accepted
			is.True(strings.Contains(msg, "base64"))                  // says what is accepted
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	type tc struct {
		name  string
		input string
		want  ed25519.PublicKey // the public half; nil: an error is expected
	}
	var tests []tc
	for name, k := range vf.Keys {
		want := vf.PublicKey(t, name)
		if k.PrivatePEM != "" {
			tests = append(tests,
				tc{name: name + " PEM", input: k.PrivatePEM, want: want},
				tc{name: name + " PEM with literal \\n", input: strings.ReplaceAll(strings.TrimSpace(k.PrivatePEM), "\n", `\n`), want: want},
			)
		}
		tests = append(tests,
			tc{name: name + " base64 seed", input: k.PrivateSeedBase64, want: want},
			tc{name: name + " unpadded base64 seed", input: strings.TrimRight(k.PrivateSeedBase64, "=")},
		)
		if k.PrivateSeedHex != "" {
			tests = append(tests, tc{name: name + " hex seed", input: k.PrivateSeedHex})
		}
	}
	tk := vf.Keys["rfc9421_test_key_ed25519"]
	tests = append(tests,
		tc{name: "empty", input: ""},
		tc{name: "public key PEM", input: tk.PublicPEM},
		tc{name: "base64 of a whole private key", input: base64.StdEncoding.EncodeToString(vf.PrivateKey(t, "rfc9421_test_key_ed25519"))},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got, err := ParsePrivateKey(tt.input)
			if tt.want != nil {
				is.NoErr(err)
				is.Equal(got.Public(), tt.want)
				return
			}
			is.True(err != nil) // invalid key accepted
			msg := err.Error()
			is.True(strings.HasPrefix(msg, "signature: "))
			is.True(strings.Contains(msg, `want a PEM "PRIVATE KEY"`))
			is.True(!strings.Contains(msg, strings.TrimSpace(tt.input)) || strings.TrimSpace(tt.input) == "") // never echoes a secret
		})
	}
}

func TestEncodeKeys(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	for name, k := range vf.Keys {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			priv := vf.PrivateKey(t, name)
			is.Equal(EncodePublicKey(priv.Public().(ed25519.PublicKey)), k.PublicBase64)
			is.Equal(EncodePrivateKey(priv), k.PrivateSeedBase64)
			back, err := ParsePublicKey(EncodePublicKey(vf.PublicKey(t, name)))
			is.NoErr(err)
			is.Equal(back, vf.PublicKey(t, name))
		})
	}
}
