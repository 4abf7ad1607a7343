package main

import (
	"slices"
	"testing"

	"github.com/fxws/websocket/helper"
)

func TestStringify(t *testing.T) {
	cases := map[string]string{
		`2.50`:                     `2.5`,
		`1e2`:                      `100`,
		`-12.5`:                    `-12.5`,
		`0.1`:                      `0.1`,
		`-0`:                       `0`,
		`1e21`:                     `1e+21`,
		`123456789012345678901`:    `123456789012345680000`,
		`9007199254740993`:         `9007199254740992`,
		`0.000001`:                 `0.000001`,
		`1e-7`:                     `1e-7`,
		`1.5e-10`:                  `1.5e-10`,
		`1.2345e25`:                `1.2345e+25`,
		`1e400`:                    `null`,
		`"\u003c\u0026\u003e\/"`:   `"<&>/"`,
		`"\b\f\n\r\t\u0001\u001f"`: `"\b\f\n\r\t\u0001\u001f"`,
		"\"\u2028é😀\"":             "\"\u2028é😀\"",
		`"\"\\"`:                   `"\"\\"`,
		` { "b" : [ 1 , true , null , { } , [ ] ] , "a" : "x" } `: `{"b":[1,true,null,{},[]],"a":"x"}`,
		`[]`:            `[]`,
		`[[1],[2,[3]]]`: `[[1],[2,[3]]]`,
		// JavaScript objects: last value of a duplicate, index keys first.
		`{"dup":1,"dup":2}`:                `{"dup":2}`,
		`{"a":1,"b":2,"a":3}`:              `{"a":3,"b":2}`,
		`{"b":1,"2":2,"a":3,"1":4,"01":5}`: `{"1":4,"2":2,"b":1,"a":3,"01":5}`,
		`{"4294967295":1,"4294967294":2}`:  `{"4294967294":2,"4294967295":1}`,
		// Lone surrogates stay escaped; pairs become the character.
		`{"s":"\ud800x","p":"\ud83d\ude00","l":"\uDC00"}`: `{"s":"\ud800x","p":"😀","l":"\udc00"}`,
		`{"inf":1e400,"tiny":1e-400}`:                     `{"inf":null,"tiny":0}`,
		`{"big":12345678901234567890}`:                    `{"big":12345678901234567000}`,
		`{"n":1.0,"e":1e3,"f":-0.5e-7,"z":-0}`:            `{"n":1,"e":1000,"f":-5e-8,"z":0}`,
	}
	for in, want := range cases {
		got, err := stringify([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("stringify(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{`{"a":`, ``, `1 2`, `[1,]`, `01`, `1.`, `"\x"`, `{"a" 1}`, `nul`, `"\u12"`} {
		if _, err := stringify([]byte(bad)); err == nil {
			t.Errorf("stringify(%q) accepted", bad)
		}
	}
}

// Rooms are listed in JavaScript's sort order (UTF-16 code units), as the
// original lists them: a character past U+FFFF before one of
// U+E000–U+FFFF, where byte order puts it after.
func TestRoomsSortAsJavaScript(t *testing.T) {
	v := viewOf(helper.ClientView{Rooms: []string{"！", "😀", "b", "a😀", "a", "é", "\uE000"}})
	want := []string{"a", "a😀", "b", "é", "😀", "\uE000", "！"} // [...].sort() in node
	if !slices.Equal(v.Rooms, want) {
		t.Fatalf("rooms %q, want %q", v.Rooms, want)
	}
}
