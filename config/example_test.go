package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/config"
)

func ExampleParse() {
	os.Setenv("GREEN_DSN", "postgres://bridge:s3cret@green.internal:5432/shop")
	os.Setenv("BLUE_DSN", "host=blue.internal port=5432 user=bridge password=s3cret dbname=shop")
	m, err := config.Parse("shop.yaml", []byte(`
name: shop
source:
  dsn: ${GREEN_DSN}
target:
  dsn: ${BLUE_DSN}
tables:
  - source: public.orders
    target: public.orders_v2
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Source.DSN, "->", m.Target.DSN)
	fmt.Println(m.SlotName(config.Forward), m.OriginName(config.Reverse))
	for _, e := range m.EntriesFor(config.Forward, m.Tables[0].Source) {
		fmt.Println(e.Name())
	}
	// Output:
	// bridge@green.internal:5432/shop -> bridge@blue.internal:5432/shop
	// cdcbridge_shop_forward cdcbridge_shop_reverse
	// tables[0] (public.orders -> public.orders_v2)
}

func ExampleParse_errors() {
	os.Unsetenv("GREEN_DSN")
	_, err := config.Parse(filepath.Join("conf", "shop.yaml"), []byte(`name: shop
source:
  dsn: ${GREEN_DSN}
target:
  dsn: host=blue.internal dbname=shop
tables:
  - source: public.orders
    target: public.orders_v2
    trasform: orders.js
`))
	fmt.Println(err)
	// Output:
	// conf/shop.yaml:3:8: source.dsn: environment variable GREEN_DSN is not set; export it or write the DSN here
	// conf/shop.yaml:9:5: tables[0].trasform: unknown key; did you mean transform? (keys here: source, target, transform, key)
}

func ExampleDSN_Redact() {
	dsn := config.NewDSN("postgres://bridge:s3cret@green.internal:5432/shop")
	err := fmt.Errorf("connecting: %w", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password "s3cret" rejected`})
	err = dsn.Redact(err)
	var pgErr *pgconn.PgError
	fmt.Println(err, errors.As(err, &pgErr))
	fmt.Printf("%v\n", dsn)
	// Output:
	// connecting: FATAL: password "xxxxx" rejected (SQLSTATE 28P01) true
	// bridge@green.internal:5432/shop
}
