package dispatch_test

import (
	"context"
	"log"
	"os"

	"github.com/dispatchkit/dispatch"
)

// Local mode on PostgreSQL: the program embeds the server, keeps its calls
// in the database, and calls its own functions in process. Run several
// instances of the program on one database (on one machine) and they
// share the work as replicas: each runs the calls of the partitions it
// holds, and takes a dead one's after its lease (10 s). (Not run as a
// test: it needs a database.)
func ExampleWithLocalPostgres() {
	d, err := dispatch.New(dispatch.WithLocalPostgres(os.Getenv("DATABASE_URL"))) // postgres://user:password@host:5432/dbname
	if err != nil {
		log.Fatal(err) // a URL that does not parse, a database that cannot be reached: the error says which
	}
	defer d.Close()
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	n, err := Halve.DispatchAndWait(context.Background(), 84)
	if err != nil {
		log.Fatal(err)
	}
	log.Println(n) // 42
}
