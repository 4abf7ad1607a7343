// Package nilref tells whether a value bound by an application is nil, or
// an interface holding a nil reference: not nil to a comparison, yet a
// panic at its first call.
package nilref

import "reflect"

// Is reports whether v is nil or holds a nil pointer, map, slice, func,
// interface or channel.
func Is(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
