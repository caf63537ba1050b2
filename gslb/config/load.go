package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment variable that overrides a key:
// dns.udp_size is GSLBD_DNS_UDP_SIZE.
const EnvPrefix = "GSLBD"

// keyDelimiter is not viper's default ".": zone origins, CIDR prefixes and
// other keys the configuration will carry contain dots, and viper would split
// them into nested maps.
const keyDelimiter = "::"

// Options says where values other than the file come from. Precedence,
// lowest first: built-in defaults, the file, GSLBD_ environment variables,
// command-line flags, Set.
type Options struct {
	// Flags are command-line flags named by key path ("log.level"); only
	// flags the user changed override.
	Flags *pflag.FlagSet
	// Set holds "key.path=value" overrides, applied last.
	Set []string
}

// FieldError is one problem with one key of one file.
type FieldError struct {
	File string
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg)
}

// Errors unpacks the problems that Load joined, one per line of output.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
		return out
	}
	return []error{err}
}

// Load reads, decodes and validates the configuration file. The returned
// error joins every problem found, each naming the file and key path.
func Load(file string, opts Options) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: reading configuration: %w", file, err)
	}
	return Parse(file, data, opts)
}

// Parse is Load for bytes already read; file is used in messages and to
// resolve relative paths.
func Parse(file string, data []byte, opts Options) (*Config, error) {
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, &FieldError{File: file, Msg: "parsing YAML: " + strings.TrimSpace(err.Error())}
	}

	cfg := defaults()
	cfg.File = file
	var errs []error
	decodeFailed := map[string]bool{}
	if err := decodeStrict(v.AllSettings(), &cfg); err != nil {
		for _, fe := range decodeErrors(file, err) {
			decodeFailed[fe.Path] = true
			errs = append(errs, fe)
		}
	}
	if err := applyOverrides(&cfg, opts); err != nil {
		for _, e := range Errors(err) {
			var fe *FieldError
			if errors.As(e, &fe) && fe.Path != "" {
				decodeFailed[fe.Path] = true
			}
			errs = append(errs, e)
		}
	}
	cfg.applyDefaults()
	for _, e := range Errors(cfg.validate()) {
		var fe *FieldError
		if errors.As(e, &fe) && shadowedBy(decodeFailed, fe.Path) {
			// A value that failed to decode is zero, and validating it
			// again would only repeat the decode error in other words.
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

func shadowedBy(failed map[string]bool, path string) bool {
	for p := range failed {
		if p == path || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// decodeStrict decodes without the conveniences viper enables by default:
// no weak typing (a quoted "30" is not a number), no comma-splitting of
// strings into lists, and unknown keys are errors.
func decodeStrict(in map[string]any, out *Config) error {
	dec, err := newStrictDecoder(out)
	if err != nil {
		return err
	}
	return dec.Decode(in)
}

func newStrictDecoder(out any) (*mapstructure.Decoder, error) {
	return mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       strictScalarHook,
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		Result:           out,
	})
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	textType     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// strictScalarHook parses the string forms of durations, timestamps and
// addresses, and refuses the silent conversions mapstructure would
// otherwise make (an integer read as nanoseconds, 30.7 truncated to 30).
func strictScalarHook(from, to reflect.Type, data any) (any, error) {
	switch {
	case to == durationType:
		s, ok := data.(string)
		if !ok {
			return nil, expected(to, data)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, expected(to, data)
		}
		return d, nil
	case to == timeType:
		s, ok := data.(string)
		if !ok {
			if t, ok := data.(time.Time); ok {
				return t, nil
			}
			return nil, expected(to, data)
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, expected(to, data)
		}
		return t, nil
	case reflect.PointerTo(to).Implements(textType) && to.Kind() == reflect.Struct:
		s, ok := data.(string)
		if !ok {
			return nil, expected(to, data)
		}
		p := reflect.New(to)
		if err := p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return nil, expected(to, data)
		}
		return p.Elem().Interface(), nil
	case isInteger(to.Kind()):
		if f, ok := data.(float64); ok && f != math.Trunc(f) {
			return nil, expected(to, data)
		}
	}
	return data, nil
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// expectation is an error message body, "expected X, got Y".
type expectation string

func (e expectation) Error() string { return string(e) }

func expected(to reflect.Type, got any) error {
	return expectation(fmt.Sprintf("expected %s, got %s", describeType(to), describeValue(got)))
}

func describeType(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 30s or 1m30s"
	case timeType:
		return "an RFC 3339 timestamp such as 2025-01-01T00:00:00Z"
	case reflect.TypeFor[netip.Addr]():
		return "an IP address"
	case reflect.TypeFor[netip.AddrPort]():
		return "an address:port such as 127.0.0.1:53 or [::1]:53"
	case reflect.TypeFor[netip.Prefix]():
		return "a CIDR prefix such as 192.0.2.0/24"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return fmt.Sprintf("a whole number %d..%d", int64(-1)<<(bits-1), int64(1)<<(bits-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number 0..%d", uint64(1)<<(t.Bits()-1)*2-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping of keys to values"
	}
	return t.String()
}

func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case int, int64, uint64, int32, uint32, uint16, uint8, int8, int16, uint:
		return fmt.Sprintf("number %v", x)
	case float64, float32:
		return fmt.Sprintf("number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T %v", v, v)
}

var mapIndex = regexp.MustCompile(`\[([^\]0-9][^\]]*)\]`)

// keyPath turns mapstructure's field names into the dotted paths used in
// every message: map entries read as keys, list entries keep [i].
func keyPath(name string) string {
	return mapIndex.ReplaceAllString(name, ".$1")
}

func decodeErrors(file string, err error) []*FieldError {
	// mapstructure wraps its joined errors once in a summary sentence.
	for {
		if _, joined := err.(interface{ Unwrap() []error }); joined {
			break
		}
		inner := errors.Unwrap(err)
		if inner == nil {
			break
		}
		err = inner
	}
	var out []*FieldError
	for _, e := range Errors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			out = append(out, &FieldError{File: file, Msg: e.Error()})
			continue
		}
		path := keyPath(de.Name())
		if path == reflect.TypeFor[Config]().String() {
			path = "" // mapstructure names the root by its Go type (viper#1724)
		}
		inner := de.Unwrap()
		var ute *mapstructure.UnconvertibleTypeError
		var pe *mapstructure.ParseError
		switch {
		case strings.HasPrefix(inner.Error(), "has invalid keys: "):
			keys := strings.Split(strings.TrimPrefix(inner.Error(), "has invalid keys: "), ", ")
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				out = append(out, &FieldError{File: file, Path: p, Msg: "unknown key"})
			}
			continue
		case errors.As(inner, &ute):
			out = append(out, &FieldError{File: file, Path: path, Msg: "expected " + describeType(ute.Expected.Type()) + ", got " + describeValue(ute.Value)})
		case errors.As(inner, &pe):
			out = append(out, &FieldError{File: file, Path: path, Msg: "expected " + describeType(pe.Expected.Type()) + ", got " + describeValue(pe.Value)})
		default:
			msg := inner.Error()
			if strings.HasPrefix(msg, "source data must be an array or slice") {
				msg = "expected a list such as [a, b], got " + strings.TrimPrefix(msg, "source data must be an array or slice, got ")
			}
			out = append(out, &FieldError{File: file, Path: path, Msg: msg})
		}
	}
	return out
}

// leaf is one key that an environment variable or flag can set.
type leaf struct {
	path  string // dotted, as in messages and flag names
	index []int  // reflect field index path from Config
	typ   reflect.Type
}

// leaves lists every key reachable through nested mappings alone (not
// through lists), because only those have a stable name to override.
func leaves() []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			idx := append(append([]int(nil), index...), i)
			ft := f.Type
			if ft.Kind() == reflect.Struct && ft != timeType && !reflect.PointerTo(ft).Implements(textType) {
				walk(ft, path, idx)
				continue
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !reflect.PointerTo(ft.Elem()).Implements(textType) {
				continue
			}
			if ft.Kind() == reflect.Map {
				continue
			}
			out = append(out, leaf{path: path, index: idx, typ: ft})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// EnvName is the environment variable that overrides a key path.
func EnvName(path string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// Keys lists every key path that environment variables, flags and --set
// can override.
func Keys() []string {
	var out []string
	for _, l := range leaves() {
		out = append(out, l.path)
	}
	return out
}

func applyOverrides(cfg *Config, opts Options) error {
	ls := leaves()
	byPath := make(map[string]leaf, len(ls))
	// Environment and flags go through viper, which reads them; binding
	// every key explicitly is what makes an environment variable work for
	// a key the file does not mention (viper's AutomaticEnv alone does not
	// reach Unmarshal).
	ov := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	for _, l := range ls {
		byPath[l.path] = l
		key := strings.ReplaceAll(l.path, ".", keyDelimiter)
		_ = ov.BindEnv(key, EnvName(l.path))
		if opts.Flags != nil {
			if f := opts.Flags.Lookup(l.path); f != nil && f.Changed {
				_ = ov.BindPFlag(key, f)
			}
		}
	}
	var errs []error
	root := reflect.ValueOf(cfg).Elem()
	for _, l := range ls {
		key := strings.ReplaceAll(l.path, ".", keyDelimiter)
		if !ov.IsSet(key) {
			continue
		}
		source := "environment " + EnvName(l.path)
		if opts.Flags != nil {
			if f := opts.Flags.Lookup(l.path); f != nil && f.Changed {
				source = "flag --" + l.path
			}
		}
		raw := ov.Get(key)
		s, ok := raw.(string)
		if !ok {
			s = fmt.Sprint(raw)
		}
		if err := setFromString(root.FieldByIndex(l.index), s); err != nil {
			errs = append(errs, &FieldError{File: source, Path: l.path, Msg: err.Error()})
		}
		cfg.setSource(l.path, source)
	}
	for _, kv := range opts.Set {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, &FieldError{File: "flag --set", Msg: fmt.Sprintf("expected key.path=value, got %q", kv)})
			continue
		}
		l, ok := byPath[strings.TrimSpace(k)]
		if !ok {
			errs = append(errs, &FieldError{File: "flag --set", Path: k, Msg: "unknown key (or one inside a list, which only the file can set)"})
			continue
		}
		if err := setFromString(root.FieldByIndex(l.index), val); err != nil {
			errs = append(errs, &FieldError{File: "flag --set", Path: l.path, Msg: err.Error()})
		}
		cfg.setSource(l.path, "flag --set")
	}
	return errors.Join(errs...)
}

// setFromString parses an override. Environment variables and flags are
// text by nature, so unlike the file they are parsed by the key's type; a
// list is comma-separated.
func setFromString(v reflect.Value, s string) error {
	s = strings.TrimSpace(s)
	t := v.Type()
	fail := func() error { return expected(t, s) }
	switch {
	case t == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fail()
		}
		v.SetInt(int64(d))
		return nil
	case t == timeType:
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fail()
		}
		v.Set(reflect.ValueOf(tm))
		return nil
	case v.CanAddr() && v.Addr().Type().Implements(textType):
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fail()
		}
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fail()
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return fail()
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			return fail()
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return fail()
		}
		v.SetFloat(f)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := setFromString(p.Elem(), s); err != nil {
			return fail()
		}
		v.Set(p)
	case reflect.Slice:
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		sl := reflect.MakeSlice(t, len(parts), len(parts))
		for i, p := range parts {
			if err := setFromString(sl.Index(i), p); err != nil {
				return fail()
			}
		}
		v.Set(sl)
	default:
		return fmt.Errorf("cannot be overridden from text")
	}
	return nil
}

// resolvePath makes a path in the file relative to the file's directory,
// as Prometheus does, so a config works from any working directory.
func resolvePath(file, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}

// setSource records that a key's value came from outside the file, so a
// validation error about it names where the operator actually set it.
func (c *Config) setSource(path, source string) {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[path] = source
}
