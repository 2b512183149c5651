package server_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/dispatchkit/dispatch/server"
)

func Example() {
	srv, err := server.New(server.Config{
		Endpoint:       "http://127.0.0.1:8000",
		AllowEndpoints: []string{"loopback"}, // calls may also name other loopback endpoints
		Memory:         true,
	})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Close()

	fmt.Println(strings.HasPrefix(srv.URL(), "http://127.0.0.1:"))
	fmt.Println(srv.APIKey())
	fmt.Println(len(srv.VerificationKey()))
	// Output:
	// true
	// test
	// 44
}
