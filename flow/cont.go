package flow

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/dispatchkit/dispatch/internal/registry"
	"github.com/dispatchkit/dispatch/serde"
)

// Cont is a continuation: what a flow does with the value of a step, by
// name. A is the type it receives, T the type of the step it returns.
//
// Build one with [Then] or [Handle] (no environment), or with the With
// method of a [ContWith] (an environment captured explicitly).
type Cont[A, T any] struct {
	def *contDef
	env any
	has bool // env is set (a ContWith's With was called)
}

// ContWith is a continuation that needs an environment E before it can be
// used: call With to capture one. The environment is CBOR-encoded into the
// state when the flow suspends, so it must hold only encodable values (no
// channels, funcs or open resources) and its exported fields are the
// compatibility contract with later builds.
type ContWith[E, A, T any] struct{ def *contDef }

// With returns the continuation with env captured.
func (c ContWith[E, A, T]) With(env E) Cont[A, T] {
	return Cont[A, T]{def: c.def, env: env, has: true}
}

// Name returns the name the continuation is registered under.
func (c Cont[A, T]) Name() string {
	if c.def == nil {
		return ""
	}
	return c.def.name
}

// Name returns the name the continuation is registered under.
func (c ContWith[E, A, T]) Name() string { return c.def.name }

func (c Cont[A, T]) frame() frame {
	if c.def == nil {
		return frame{}
	}
	return frame{def: c.def, env: c.env, hasEnv: c.has}
}

// contDef is a registered continuation, with its types erased.
type contDef struct {
	name    string
	in      reflect.Type // A
	env     reflect.Type // E, nil without an environment
	catches bool         // receives errors (Handle) rather than skipping them
	apply   func(c *Ctx, env any, in value, err error) node
}

// frame is a continuation waiting on the stack. env is the Go value; raw its
// CBOR encoding once known (read from a state, or encoded at a suspension),
// so frames that stay on the stack across many resumes are not re-encoded.
type frame struct {
	def    *contDef
	env    any
	hasEnv bool
	raw    []byte
}

// conts are the registered continuations, by name. Names follow the
// protocol's pattern for function names, so that they read the same in
// traces and logs.
var conts registry.Registry[*contDef]

func register(d *contDef) {
	if err := registerSafely(d); err != nil {
		panic(err)
	}
}

// registerSafely checks d's name and environment type and registers it.
func registerSafely(d *contDef) error {
	if err := checkEnv(d); err != nil {
		return err
	}
	if len(d.name) > registry.MaxNameBytes {
		return fmt.Errorf("flow: continuation name %q is %d bytes, at most %d: choose a shorter name", registry.Short(d.name), len(d.name), registry.MaxNameBytes)
	}
	if !registry.ValidName(d.name) {
		return fmt.Errorf("flow: invalid continuation name %q: names match %s (letters, digits, '_', '.', '<', '>'; not starting with a digit)", d.name, registry.Pattern)
	}
	if !conts.Add(d.name, d) {
		return fmt.Errorf("flow: continuation %q is registered twice: names must be unique in a program because a suspended state refers to its continuations by name", d.name)
	}
	return nil
}

func lookup(name string) (*contDef, bool) { return conts.Get(name) }

// checkEnv checks, when a continuation is registered, that its environment
// type survives the state's CBOR encoding, so that a mistake shows at
// start-up rather than at the first suspension, or never (a dropped
// field). It reports every problem at once, each with its field path.
// Interfaces are not looked into: what they hold is checked when the state
// is saved.
func checkEnv(d *contDef) error {
	if d.env == nil {
		return nil
	}
	problems := serde.CheckType(d.env)
	if len(problems) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "flow: continuation %q: its environment %s would not survive a suspension (it is saved with CBOR):", registry.Short(d.name), d.env)
	for _, p := range problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	b.WriteString("\nremove these fields or tag them `cbor:\"-\"`, and export the fields the continuation needs; fields of interface type are checked when the state is saved, since what they hold is known only then")
	return &EnvError{Name: d.name, Type: d.env, Problems: problems, msg: b.String()}
}

// EnvError reports an environment type that would not survive a
// suspension, found when its continuation was registered ([ThenWith],
// [HandleWith] panic with it; [ThenWithSafely], [HandleWithSafely] return
// it): every field CBOR cannot encode (channels, funcs, unsafe pointers,
// complex numbers) and every unexported field, which CBOR would drop
// without a word, so that the continuation would see its zero value after a
// resume. A field tagged `cbor:"-"` is left out on purpose and is not
// reported.
//
// Types are checked, not values: a field of interface type holding a
// channel is found only when the state is saved, which then fails the call
// with an error naming the frame and the field path.
type EnvError struct {
	Name     string               // the continuation's name
	Type     reflect.Type         // its environment type
	Problems []serde.FieldProblem // every problem, in field order
	msg      string
}

func (e *EnvError) Error() string { return e.msg }

// Then registers fn as the continuation called name and returns it. fn
// receives the value of the step it continues; an error skips it and goes on
// to the next frame that handles errors.
//
// The name, not the Go identifier, is what a suspended state records: keep
// it stable across builds so that states written by one build resume in the
// next even if the Go code was renamed or moved. Then panics if the name is
// invalid or already taken ([ThenSafely] returns the error), so declare
// continuations as package-level variables:
//
//	var transformed = flow.Then("pipeline.transformed", func(ctx *flow.Ctx, msg string) flow.Step[string] {
//		return flow.Await(Transform2.Call(msg), flow.Return[string]())
//	})
func Then[A, T any](name string, fn func(ctx *Ctx, v A) Step[T]) Cont[A, T] {
	return must(ThenSafely(name, fn))
}

// ThenSafely is [Then] returning an error instead of panicking.
func ThenSafely[A, T any](name string, fn func(ctx *Ctx, v A) Step[T]) (Cont[A, T], error) {
	d := &contDef{name: name, in: reflect.TypeFor[A]()}
	d.apply = func(c *Ctx, _ any, in value, _ error) node {
		a, err := decodeValue[A](d, in)
		if err != nil {
			return failNode{err}
		}
		return fn(c, a).n
	}
	if err := registerSafely(d); err != nil {
		return Cont[A, T]{}, err
	}
	return Cont[A, T]{def: d}, nil
}

func must[C any](c C, err error) C {
	if err != nil {
		panic(err)
	}
	return c
}

// Handle is like [Then] for a continuation that also receives errors: fn is
// called with the value, or with the zero value and the error of the step it
// continues (a failed call keeps its status: see [dispatcherr.Error]).
func Handle[A, T any](name string, fn func(ctx *Ctx, v A, err error) Step[T]) Cont[A, T] {
	return must(HandleSafely(name, fn))
}

// HandleSafely is [Handle] returning an error instead of panicking.
func HandleSafely[A, T any](name string, fn func(ctx *Ctx, v A, err error) Step[T]) (Cont[A, T], error) {
	d := &contDef{name: name, in: reflect.TypeFor[A](), catches: true}
	d.apply = func(c *Ctx, _ any, in value, err error) node {
		var a A
		if err == nil {
			a, err = decodeValue[A](d, in)
		}
		return fn(c, a, err).n
	}
	if err := registerSafely(d); err != nil {
		return Cont[A, T]{}, err
	}
	return Cont[A, T]{def: d}, nil
}

// ThenWith registers a continuation that captures an environment E: the
// state it needs from before the await, passed explicitly. Call With on the
// result to capture a value:
//
//	var charged = flow.ThenWith("order.charged", func(ctx *flow.Ctx, o Order, r Receipt) flow.Step[Confirmation] { ... })
//	... flow.Await(Charge.Call(o), charged.With(o))
//
// The environment is CBOR-encoded into the state, costing about its encoded
// size plus the name's length plus 3 bytes per frame. See [Then] about names.
//
// E is checked here, once: ThenWith panics with an [*EnvError] listing
// every field of E that CBOR cannot encode (channels, funcs, unsafe
// pointers) and every unexported field, which CBOR would drop without a
// word; [ThenWithSafely] returns it. Fields of interface type are checked
// when the state is saved, since what they hold is known only then.
func ThenWith[E, A, T any](name string, fn func(ctx *Ctx, env E, v A) Step[T]) ContWith[E, A, T] {
	return must(ThenWithSafely(name, fn))
}

// ThenWithSafely is [ThenWith] returning an error instead of panicking: an
// [*EnvError] for an environment type that would not survive a suspension,
// or an error about the name.
func ThenWithSafely[E, A, T any](name string, fn func(ctx *Ctx, env E, v A) Step[T]) (ContWith[E, A, T], error) {
	d := &contDef{name: name, in: reflect.TypeFor[A](), env: reflect.TypeFor[E]()}
	d.apply = func(c *Ctx, env any, in value, _ error) node {
		a, err := decodeValue[A](d, in)
		if err != nil {
			return failNode{err}
		}
		e, _ := env.(E)
		return fn(c, e, a).n
	}
	if err := registerSafely(d); err != nil {
		return ContWith[E, A, T]{}, err
	}
	return ContWith[E, A, T]{def: d}, nil
}

// HandleWith is [ThenWith] for a continuation that also receives errors, as
// [Handle] does. It checks E as ThenWith does.
func HandleWith[E, A, T any](name string, fn func(ctx *Ctx, env E, v A, err error) Step[T]) ContWith[E, A, T] {
	return must(HandleWithSafely(name, fn))
}

// HandleWithSafely is [HandleWith] returning an error instead of panicking,
// as [ThenWithSafely] does.
func HandleWithSafely[E, A, T any](name string, fn func(ctx *Ctx, env E, v A, err error) Step[T]) (ContWith[E, A, T], error) {
	d := &contDef{name: name, in: reflect.TypeFor[A](), env: reflect.TypeFor[E](), catches: true}
	d.apply = func(c *Ctx, env any, in value, err error) node {
		var a A
		if err == nil {
			a, err = decodeValue[A](d, in)
		}
		e, _ := env.(E)
		return fn(c, e, a, err).n
	}
	if err := registerSafely(d); err != nil {
		return ContWith[E, A, T]{}, err
	}
	return ContWith[E, A, T]{def: d}, nil
}

// returnDef is the identity continuation behind [Return]. It passes the value
// through without decoding it, so it needs no type and one name serves every
// T.
var returnDef = func() *contDef {
	d := &contDef{name: "flow.return", in: reflect.TypeFor[any]()}
	d.apply = func(_ *Ctx, _ any, in value, _ error) node { return doneNode{in} }
	register(d)
	return d
}()

// Return returns the continuation that produces the value it receives: the
// last step of a flow that returns what it awaited.
//
//	return flow.Await(Transform2.Call(msg), flow.Return[string]())
func Return[T any]() Cont[T, T] { return Cont[T, T]{def: returnDef} }

// value is what flows between steps: a Go value produced in this process, or
// results read off the wire (one Any, or a list for Gather) and decoded only
// when a continuation needs them, into the type it asks for.
type value struct {
	v    any
	set  bool // v holds a Go value (possibly nil)
	wire wireValue
}

// decodeValue turns in into an A for the continuation d.
func decodeValue[A any](d *contDef, in value) (A, error) {
	var a A
	if in.set || !in.wire.present() {
		if in.v == nil {
			return a, nil
		}
		if v, ok := in.v.(A); ok {
			return v, nil
		}
		return a, fmt.Errorf("flow: continuation %q takes %s but received %T", d.name, d.in, in.v)
	}
	if err := in.wire.decode(&a); err != nil {
		return a, fmt.Errorf("flow: continuation %q: %w", d.name, err)
	}
	return a, nil
}

// decodeEnv decodes a frame's environment from its CBOR bytes.
func (d *contDef) decodeEnv(raw []byte) (any, error) {
	if d.env == nil {
		if len(raw) != 0 {
			return nil, fmt.Errorf("has an environment but continuation %q takes none", d.name)
		}
		return nil, nil
	}
	p := reflect.New(d.env)
	if len(raw) != 0 {
		if err := serde.UnmarshalCBOR(raw, p.Interface()); err != nil {
			return nil, fmt.Errorf("environment no longer decodes into %s: %w", d.env, err)
		}
	}
	return p.Elem().Interface(), nil
}
