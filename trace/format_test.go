package trace_test

import (
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	sdkv1 "buf.build/gen/go/stealthrocket/dispatch-proto/protocolbuffers/go/dispatch/sdk/v1"
	"github.com/matryer/is"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dispatchkit/dispatch/trace"
)

type Order struct {
	ID    string
	Items []string
	note  string // unexported: skipped
}

type Line struct {
	SKU   string
	Qty   int
	Price float64
}

type Cart struct {
	Owner *Customer
	Lines []Line
	Tags  map[string]int
	At    time.Time
	TTL   time.Duration
}

type Customer struct{ Name string }

type Node struct {
	Name string
	Next *Node
}

type Color int

func (c Color) String() string { return [...]string{"Red", "Green"}[c] }

type Job struct {
	Done     chan struct{}
	Results  <-chan int
	Callback func(int) error
	Handler  func()
}

type panicky struct{}

func (*panicky) Error() string { panic("no message") }

type Box[T any] struct{ V T }

func handle() {}

func TestFormat(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 12, 30, 0, 500_000_000, time.UTC)
	loop := &Node{Name: "a"}
	loop.Next = &Node{Name: "b", Next: loop}
	shared := &Customer{Name: "ann"}
	self := map[string]any{}
	self["self"] = self
	var nilOrder *Order
	var nilErr error

	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, "nil"},
		{"nil pointer", nilOrder, "nil"},
		{"nil error", nilErr, "nil"},
		{"nil map", map[string]int(nil), "nil"},
		{"nil slice", []int(nil), "nil"},
		{"bool", true, "true"},
		{"int", -42, "-42"},
		{"uint8", uint8(7), "7"},
		{"float", 1.5, "1.5"},
		{"float32", float32(0.1), "0.1"},
		{"complex", complex(1, -2), "(1-2i)"},
		{"string", "hello \"world\"\n", `"hello \"world\"\n"`},
		{"struct", Order{ID: "o-1", Items: []string{"a", "b"}, note: "secret"}, `Order{ID: "o-1", Items: ["a", "b"]}`},
		{"pointer to struct", &Order{ID: "o-1"}, `&Order{ID: "o-1", Items: nil}`},
		{"anonymous struct", struct{ A, b int }{1, 2}, "{A: 1}"},
		{"empty slice", []int{}, "[]"},
		{"array", [3]int{1, 2, 3}, "[1, 2, 3]"},
		{
			"nested",
			Cart{
				Owner: shared,
				Lines: []Line{{"sku-1", 2, 9.5}, {"sku-2", 1, 20}},
				Tags:  map[string]int{"b": 2, "a": 1},
				At:    at,
				TTL:   1500 * time.Millisecond,
			},
			`Cart{Owner: &Customer{Name: "ann"}, Lines: [Line{SKU: "sku-1", Qty: 2, Price: 9.5}, Line{SKU: "sku-2", Qty: 1, Price: 20}], Tags: {"a": 1, "b": 2}, At: 2024-05-01T12:30:00.5Z, TTL: 1.5s}`,
		},
		{"shared pointer is not a cycle", []*Customer{shared, shared}, `[&Customer{Name: "ann"}, &Customer{Name: "ann"}]`},
		{"map order strings", map[string]bool{"zeta": true, "alpha": false, "mid": true}, `{"alpha": false, "mid": true, "zeta": true}`},
		{"map order numbers", map[int]string{10: "ten", 9: "nine", -1: "minus"}, `{-1: "minus", 9: "nine", 10: "ten"}`},
		{"map order mixed keys", map[any]int{"b": 1, 2: 2, "a": 3, 1: 4}, `{"a": 3, "b": 1, 1: 4, 2: 2}`},
		{"map of structs", map[string]Customer{"x": {Name: "x"}}, `{"x": Customer{Name: "x"}}`},
		{"cycle", loop, `&Node{Name: "a", Next: &Node{Name: "b", Next: <cycle *Node>}}`},
		{"map cycle", self, `{"self": <cycle map[string]any>}`},
		{"time", at, "2024-05-01T12:30:00.5Z"},
		{"time pointer", &at, "2024-05-01T12:30:00.5Z"},
		{"duration", 90 * time.Second, "1m30s"},
		{"bytes text", []byte("hello"), `[]byte("hello")`},
		{"bytes binary", []byte{0x00, 0x0a, 0xff}, "[]byte(0x000aff)"},
		{"bytes long binary", make([]byte, 100), "[]byte(0x" + strings.Repeat("00", 32) + "… 100 bytes)"},
		{"bytes long text", []byte(strings.Repeat("ab", 100)), `[]byte("` + strings.Repeat("ab", 64) + `"… 200 bytes)`},
		{"bytes empty", []byte{}, `[]byte("")`},
		{"byte array", [4]byte{1, 2, 3, 4}, "[4]byte(0x01020304)"},
		{"chan", make(chan int), "<chan int>"},
		{"chans and funcs in a struct", Job{Done: make(chan struct{}), Results: make(<-chan int), Callback: nil, Handler: handle}, "Job{Done: <chan struct{}>, Results: <<-chan int>, Callback: nil, Handler: <func trace_test.handle>}"},
		{"closure", func() {}, "<func trace_test.TestFormat.func1>"},
		{"error", errors.New("boom"), `error("boom")`},
		{"wrapped error", errorsJoin(), `error("a\nb")`},
		{"panicking error", &panicky{}, "&panicky{}"},
		{"stringer enum", Color(1), "Green"},
		{"stringer in struct", struct{ C Color }{0}, "{C: Red}"},
		{"net.IP", net.IPv4(127, 0, 0, 1), "127.0.0.1"},
		{"big.Int", big.NewInt(12345), "12345"},
		{"generic", Box[int]{V: 1}, "Box[…]{V: 1}"},
		{"proto message", &sdkv1.Call{CorrelationId: 7, Function: "transform", Endpoint: "https://x"}, `dispatch.sdk.v1.Call{"correlationId":"7","endpoint":"https://x","function":"transform"}`},
		{"proto scalar message", durationpb.New(1500 * time.Millisecond), `google.protobuf.Duration("1.500s")`},
		{"proto in struct", struct{ V *wrapperspb.StringValue }{wrapperspb.String("x")}, `{V: google.protobuf.StringValue("x")}`},
		{"proto that cannot be JSON", &anypb.Any{TypeUrl: "type.example.com/Unknown", Value: []byte{1}}, `&Any{TypeUrl: "type.example.com/Unknown", Value: []byte(0x01)}`},
		{"interface holding pointer", any(&Customer{Name: "z"}), `&Customer{Name: "z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			is.Equal(trace.Format(tt.v), tt.want)
		})
	}
}

func errorsJoin() error { return errors.Join(errors.New("a"), errors.New("b")) }

func TestFormatTruncation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
	}{
		{"long string", strings.Repeat("x", 10_000)},
		{"long multibyte string", strings.Repeat("é", 10_000)},
		{"long slice", make([]int, 100_000)},
		{"big map", bigMap()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			got := trace.Format(tt.v)
			is.True(strings.HasSuffix(got, trace.TruncatedMarker))
			is.True(len(got) <= trace.FormatLimit+len(trace.TruncatedMarker))
			is.True(len(got) > trace.FormatLimit-4) // cut at the limit, give or take a character
			is.True(utf8.ValidString(got))
		})
	}

	is := is.New(t)
	fits := strings.Repeat("y", trace.FormatLimit-2) // quoted: exactly the limit
	is.Equal(trace.Format(fits), `"`+fits+`"`)
}

func bigMap() map[int]int {
	m := make(map[int]int, 1000)
	for i := range 1000 {
		m[i] = i
	}
	return m
}

func TestFormatDeepNesting(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	var n *Node
	for range 100 {
		n = &Node{Name: "n", Next: n}
	}
	got := trace.Format(n)
	is.True(strings.Contains(got, "…"))
	is.True(strings.HasPrefix(got, `&Node{Name: "n", Next: &Node{`))
}
