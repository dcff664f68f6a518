package sequences

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/change"
	"github.com/cdcbridge/cdcbridge/config"
)

func TestMatch(t *testing.T) {
	orders := change.Table{Schema: "public", Name: "orders"}
	v2 := change.Table{Schema: "public", Name: "orders_v2"}
	for _, tc := range []struct {
		name      string
		transform bool
		src, tgt  []column
		want      string // one "from -> to" per line
	}{
		{
			name: "identity mapping pairs same names only",
			src:  []column{{"id", true, "s.a"}, {"n", false, "s.n"}},
			tgt:  []column{{"order_id", true, "t.a"}, {"n", false, "t.n"}},
			want: "n>n",
		},
		{
			name:      "transform pairs the renamed key",
			transform: true,
			src:       []column{{"id", true, "s.a"}, {"n", false, "s.n"}},
			tgt:       []column{{"order_id", true, "t.a"}, {"n", false, "t.n"}},
			want:      "n>n id>order_id",
		},
		{
			name:      "a same-named column without a sequence pairs nothing",
			transform: true,
			src:       []column{{"id", true, "s.a"}},
			tgt:       []column{{"id", true, ""}},
		},
		{
			name:      "two sequence-backed key columns are ambiguous",
			transform: true,
			src:       []column{{"id", true, "s.a"}},
			tgt:       []column{{"region", true, "t.r"}, {"order_id", true, "t.a"}},
		},
		{
			name:      "a key already paired by name is not paired again",
			transform: true,
			src:       []column{{"id", true, "s.a"}},
			tgt:       []column{{"id", false, "t.id"}, {"order_id", true, "t.a"}},
			want:      "id>id",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := config.Entry{Source: orders, Target: v2}
			if tc.transform {
				e.Transform = "/x/orders.js"
			}
			for _, dir := range []config.Direction{config.Forward, config.Reverse} {
				var got []string
				for _, p := range match(e, tc.src, tc.tgt, dir) {
					s, d := p.From, p.To
					if dir == config.Reverse {
						s, d = d, s
					}
					if s.Table != orders || d.Table != v2 {
						t.Fatalf("%v: pair %+v is not oriented %v", dir, p, dir)
					}
					got = append(got, s.Column+">"+d.Column)
				}
				if g := strings.Join(got, " "); g != tc.want {
					t.Errorf("%v: got %q, want %q\nsrc %v\ntgt %v", dir, g, tc.want, tc.src, tc.tgt)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	pair := func(entry, from, to string) Pair {
		return Pair{Entry: entry, From: Seq{Sequence: from}, To: Seq{Sequence: to}}
	}
	discovered := []Pair{
		pair("a", "public.a_id_seq", "public.a_id_seq"),
		pair("b", "public.b_id_seq", "public.b_id_seq"),
		pair("c", `"Shop"."C_seq"`, "public.c_seq"),
	}
	named := []Pair{
		pair("named a", `"public"."a_id_seq"`, "a_id_seq"), // the same as a
		pair("named d", "public.d_seq", "public.d_seq"),
		pair("named b", "public.b_id_seq", "public.b_id_seq"), // excluded from discovery, named again
	}
	got := Merge(discovered, named, func(p Pair) bool { return p.Entry == "b" })
	var entries []string
	for _, p := range got {
		entries = append(entries, p.Entry)
	}
	if g, want := fmt.Sprint(entries), "[a c named d named b]"; g != want {
		t.Fatalf("Merge: %s, want %s", g, want)
	}
}
