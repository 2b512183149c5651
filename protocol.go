package dispatch

import (
	"net/http"
	"time"

	"connectrpc.com/connect"
)

// Protocol is the wire protocol the client speaks to Dispatch's
// DispatchService: [ProtocolConnect] (the default), [ProtocolGRPC] or
// [ProtocolGRPCWeb]. Pass it to [WithProtocol].
//
// Protocol is a struct with unexported fields so that no other value can
// be made; its zero value is ProtocolConnect.
type Protocol struct{ kind protocolKind }

type protocolKind uint8

const (
	protocolConnect protocolKind = iota
	protocolGRPC
	protocolGRPCWeb
)

// The protocols of [WithProtocol].
var (
	// ProtocolConnect is the Connect protocol over HTTP/1.1 or HTTP/2
	// (binary protobuf): what the local server, the hosted platform and
	// every connect-go or dispatch-py server serve. The default.
	ProtocolConnect = Protocol{protocolConnect}
	// ProtocolGRPC is gRPC, which needs HTTP/2: for servers that speak
	// only gRPC, such as the mock server of dispatch-py
	// (python -m dispatch.test), a grpcio server.
	ProtocolGRPC = Protocol{protocolGRPC}
	// ProtocolGRPCWeb is gRPC-Web, over HTTP/1.1 or HTTP/2, for servers
	// behind a gRPC-Web proxy.
	ProtocolGRPCWeb = Protocol{protocolGRPCWeb}
)

// String returns "connect", "grpc" or "grpc-web".
func (p Protocol) String() string {
	switch p.kind {
	case protocolGRPC:
		return "grpc"
	case protocolGRPCWeb:
		return "grpc-web"
	}
	return "connect"
}

// WithProtocol sets the protocol the client speaks to Dispatch (default
// [ProtocolConnect]). It changes nothing on the endpoint's side, which
// serves all three (see [Dispatch.Handler]).
//
// gRPC needs HTTP/2. The HTTP client this package makes then speaks
// HTTP/2 only: over TLS for https:// URLs, and cleartext HTTP/2 with prior
// knowledge (h2c, as gRPC clients do) for http:// URLs. A client given
// with [WithHTTPClient] is used as it is, so it must do the same: an
// [http.Transport] does HTTP/2 over TLS by default, and h2c when its
// Protocols has UnencryptedHTTP2 set and HTTP1 unset.
//
// There is no environment variable for it: the protocol is a property of
// the server a program talks to, chosen in code with its URL; the hosted
// platform and this module's server speak the default.
func WithProtocol(p Protocol) Option {
	return optionFunc(func(c *config) { c.protocol = p })
}

// clientOptions are the connect client options of p.
func (p Protocol) clientOptions() []connect.ClientOption {
	switch p.kind {
	case protocolGRPC:
		return []connect.ClientOption{connect.WithGRPC()}
	case protocolGRPCWeb:
		return []connect.ClientOption{connect.WithGRPCWeb()}
	}
	return nil
}

// defaultHTTPClient is the HTTP client of an instance given none, for p.
func defaultHTTPClient(p Protocol) *http.Client {
	// The default transport keeps 2 idle connections per host: a program
	// dispatching from many goroutines would reconnect all the time.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64
	if p.kind == protocolGRPC {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Timeout: time.Minute, Transport: t}
}
