package transform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// One compiled set serves Mappers of both directions on many goroutines,
// without reading the files again, and each Mapper runs the script's top
// level in a runtime of its own.
func TestScriptsSharedAcrossMappers(t *testing.T) {
	orders, v2 := ordersTables()
	path := script(t, "orders.js", ordersJS+"let calls = 0;\nfunction count() { return ++calls }\n")
	fwdSpecs := []Spec{{Entry: "e", Read: orders.Name, Write: v2.Name, Script: path}}
	bwdSpecs := []Spec{{Entry: "e", Read: v2.Name, Write: orders.Name, Script: path}}
	scripts, err := Compile(fwdSpecs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	const workers = 4
	errs := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			fwd, err := New(fwdSpecs, Options{Func: "forward", Read: newCatalog(orders), Write: newCatalog(v2), Scripts: scripts})
			if err != nil {
				errs <- err
				return
			}
			for range 20 {
				outs, err := fwd.Map(insert(relation(orders, 1, "id"), orderRow))
				if err != nil {
					errs <- err
					return
				}
				if got := vals(outs[0]); got != "id=42 amount_cents=1990 state=1" {
					errs <- fmt.Errorf("forward wrote %s", got)
				}
			}
		})
		wg.Go(func() {
			back, err := New(bwdSpecs, Options{Func: "backward", Read: newCatalog(v2), Write: newCatalog(orders), Scripts: scripts})
			if err != nil {
				errs <- err
				return
			}
			outs, err := back.Map(insert(relation(v2, 2, "id"), row("42", "1990", "1", nil, "bio", `\x`)))
			if err != nil {
				errs <- err
				return
			}
			if got := vals(outs[0]); got != "id=42 amount=19.90 status=paid" {
				errs <- fmt.Errorf("backward wrote %s", got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Top-level state belongs to the runtime: a second Mapper starts afresh.
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	counter := script(t, "counter.js", "let n = 0;\nfunction forward(r) { n++; return {id: r.id, v: 'n' + n} }\nfunction backward(r) { return r }")
	specs := []Spec{{Entry: "e", Read: a.Name, Write: a.Name, Script: counter}}
	if scripts, err = Compile(specs); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m, err := New(specs, Options{Func: "forward", Read: newCatalog(a), Write: newCatalog(a), Scripts: scripts})
		if err != nil {
			t.Fatal(err)
		}
		if got := vals(mustMap(t, m, insert(relation(a, 1, "id"), row("1", "x")))[0]); got != "id=1 v=n1" {
			t.Errorf("Mapper %d: first call wrote %s, want id=1 v=n1", i, got)
		}
	}
}

// Compile reports a script that cannot be compiled exactly as New does.
func TestCompileErrors(t *testing.T) {
	orders, v2 := ordersTables()
	syntax := script(t, "bad.js", "function forward(r) {\n  return r +;\n}\n")
	dup := script(t, "dup.js", "let a = 1;\nlet a = 2;\nfunction forward(r) { return r }\n")
	gone := t.TempDir() + "/gone.js"
	specs := []Spec{
		{Entry: "tables[0]", Read: orders.Name, Write: v2.Name, Script: syntax},
		{Entry: "tables[1]", Read: orders.Name, Write: v2.Name, Script: syntax},
		{Entry: "tables[2]", Read: orders.Name, Write: v2.Name, Script: dup},
		{Entry: "tables[3]", Read: orders.Name, Write: v2.Name, Script: gone},
	}
	scripts, cerr := Compile(specs)
	if cerr == nil || scripts != nil {
		t.Fatalf("Compile = %v, %v; want an error", scripts, cerr)
	}
	_, nerr := New(specs, Options{Func: "forward", Read: newCatalog(orders), Write: newCatalog(v2)})
	if nerr == nil || cerr.Error() != nerr.Error() {
		t.Errorf("Compile error:\n%v\nNew error:\n%v", cerr, nerr)
	}
	for _, want := range []string{"tables[0]: " + syntax + ":2:13: syntax error", "tables[2]: " + dup + ":2:", "tables[3]: reading transform: "} {
		if !contains(cerr.Error(), want) {
			t.Errorf("Compile error lacks %q:\n%v", want, cerr)
		}
	}
	if !errors.Is(cerr, fs.ErrNotExist) {
		t.Errorf("Compile error of a missing file is not fs.ErrNotExist: %v", cerr)
	}
}

// A script the set does not hold is compiled by New.
func TestScriptsMissingFromSet(t *testing.T) {
	a := table("public", "a", []string{"id"}, col("id", pgtype.Int4OID), col("v", pgtype.TextOID))
	path := script(t, "a.js", "function forward(r) { return {id: r.id, v: 'js'} }\nfunction backward(r) { return r }")
	scripts, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New([]Spec{{Entry: "e", Read: a.Name, Write: a.Name, Script: path}},
		Options{Func: "forward", Read: newCatalog(a), Write: newCatalog(a), Scripts: scripts})
	if err != nil {
		t.Fatal(err)
	}
	if got := vals(mustMap(t, m, insert(relation(a, 1, "id"), row("1", "x")))[0]); got != "id=1 v=js" {
		t.Errorf("wrote %s", got)
	}
}
