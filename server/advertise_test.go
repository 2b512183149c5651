package server

import (
	"net"
	"os"
	"testing"

	"github.com/matryer/is"
)

func TestAdvertised(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "127.0.0.1"
	}
	tests := []struct {
		name, cfg, addr, want string
	}{
		{"configured", "https://r1.example.com:8443/", "0.0.0.0:4450", "https://r1.example.com:8443"},
		{"loopback", "", "127.0.0.1:4450", "http://127.0.0.1:4450"},
		{"an address", "", "10.0.0.2:4450", "http://10.0.0.2:4450"},
		{"IPv6 loopback", "", "[::1]:4450", "http://[::1]:4450"},
		{"every interface", "", "0.0.0.0:4450", "http://" + net.JoinHostPort(host, "4450")},
		{"every interface, IPv6", "", "[::]:4450", "http://" + net.JoinHostPort(host, "4450")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			addr, err := net.ResolveTCPAddr("tcp", tt.addr)
			is.NoErr(err)
			is.Equal(advertised(tt.cfg, addr), tt.want)
		})
	}
}
