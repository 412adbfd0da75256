// shmbus._shmbus — the C++ half of the Python package (pybind11).
//
// The Python API (src/python/shmbus/__init__.py re-exports this module and
// adds decorator and asyncio sugar) follows the C++ API's meaning with
// Python habits: keyword options instead of option structs, strings for
// enums ("lossy", "live"), dicts for typed messages, context managers for
// everything that maps shared memory, exceptions for setup errors.
//
// Three rules hold everywhere below:
//  * The GIL is released around every call that can wait (Subscriber::wait,
//    a reliable publish with a timeout, Requester::call, Dispatcher::wait),
//    so other Python threads run while one waits on the bus; waits are cut
//    into slices so Ctrl-C (PyErr_CheckSignals) is seen within ~50 ms.
//  * Messages from poll/recv own their bytes (a copy out of the slot): they
//    stay valid whatever the producer does next. In a Dispatcher handler
//    msg.raw is a zero-copy memoryview, released when the handler returns
//    (see PyMessage): a late use is a ValueError, never a stale read.
//  * Only the public API (<shmbus/shmbus.hpp>) is used, so the module
//    survives the library's internal reorganisations.
#include <utility>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <flatbuffers/reflection.h>
#include <shmbus/shmbus.hpp>

namespace py = pybind11;
using namespace std::chrono_literals;

namespace shmbus::python {
namespace {

// ------------------------------------------------------------------ errors

// One Python class per Errc, all under shmbus.Error; some also derive from
// the built-in they mean (Timeout is a TimeoutError, InvalidArgument a
// ValueError) so generic handlers catch them.
struct ErrorClasses {
  PyObject* base = nullptr;
  std::array<PyObject*, 32> by_code{};
};
ErrorClasses& error_classes() {
  static ErrorClasses e;
  return e;
}

constexpr std::array<std::pair<Errc, const char*>, 20> kErrcNames{{
    {Errc::InvalidName, "InvalidName"},
    {Errc::NoSuchBus, "NoSuchBus"},
    {Errc::NoSuchTopic, "NoSuchTopic"},
    {Errc::ForeignSegment, "ForeignSegment"},
    {Errc::VersionMismatch, "VersionMismatch"},
    {Errc::TruncatedSegment, "TruncatedSegment"},
    {Errc::TopicMismatch, "TopicMismatch"},
    {Errc::TypeMismatch, "TypeMismatch"},
    {Errc::SchemaMismatch, "SchemaMismatch"},
    {Errc::ProducerExists, "ProducerExists"},
    {Errc::ConsumerTableFull, "ConsumerTableFull"},
    {Errc::DirectoryFull, "DirectoryFull"},
    {Errc::UnknownType, "UnknownType"},
    {Errc::InvalidJson, "InvalidJson"},
    {Errc::InvalidMessage, "InvalidMessage"},
    {Errc::InvalidArgument, "InvalidArgument"},
    {Errc::Timeout, "Timeout"},
    {Errc::SystemError, "SystemError"},
    {Errc::PermissionDenied, "PermissionDenied"},
    {Errc::NoSpace, "NoSpace"},
}};

void register_errors(py::module_& m) {
  auto& ec = error_classes();
  ec.base = PyErr_NewExceptionWithDoc(
      "shmbus.Error",
      "Base of every shmbus error. `code` is the stable lower-case name of the C++ Errc "
      "(\"producer_exists\"); str() is the C++ message: what happened and what to do.",
      PyExc_Exception, nullptr);
  m.attr("Error") = py::handle(ec.base);
  for (const auto& [code, name] : kErrcNames) {
    PyObject* bases = nullptr;
    if (code == Errc::Timeout)
      bases = PyTuple_Pack(2, ec.base, PyExc_TimeoutError);
    else if (code == Errc::InvalidArgument || code == Errc::InvalidName)
      bases = PyTuple_Pack(2, ec.base, PyExc_ValueError);
    else if (code == Errc::NoSuchBus || code == Errc::NoSuchTopic || code == Errc::UnknownType)
      bases = PyTuple_Pack(2, ec.base, PyExc_LookupError);
    else
      bases = PyTuple_Pack(1, ec.base);
    const std::string qual = std::string("shmbus.") + name;
    const std::string doc = std::string("shmbus error \"") + std::string(to_string(code)) +
                            "\" (C++ Errc::" + name + "); str() is the C++ message.";
    PyObject* cls = PyErr_NewExceptionWithDoc(qual.c_str(), doc.c_str(), bases, nullptr);
    Py_DECREF(bases);
    PyObject_SetAttrString(cls, "code", py::str(std::string(to_string(code))).ptr());
    ec.by_code[static_cast<std::size_t>(code)] = cls;
    m.attr(name) = py::handle(cls);
  }
  PyObject_SetAttrString(ec.base, "code", py::str("").ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      auto& classes = error_classes();
      PyObject* cls = classes.by_code[static_cast<std::size_t>(e.code())];
      PyErr_SetString(cls != nullptr ? cls : classes.base, e.what());
    }
  });
}

[[noreturn]] void throw_error(Errc code, const std::string& what) {
  throw Error(code, what);
}

// ------------------------------------------------------------------ helpers

std::chrono::nanoseconds seconds_to_ns(double s) {
  if (!(s >= 0))
    throw_error(Errc::InvalidArgument,
                "a timeout must be a number of seconds >= 0 (got " + std::to_string(s) + ")");
  if (s > 1e9) s = 1e9;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(s * 1e9));
}

Policy parse_policy(const std::string& s) {
  if (s == "lossy") return Policy::Lossy;
  if (s == "reliable") return Policy::Reliable;
  throw_error(Errc::InvalidArgument,
              "policy must be \"lossy\" or \"reliable\" (got \"" + s + "\")");
}

void parse_start(const py::object& start, SubscriberOptions& o) {
  if (py::isinstance<py::str>(start)) {
    const auto s = start.cast<std::string>();
    if (s == "live")
      o.start = Start::Live;
    else if (s == "oldest")
      o.start = Start::Oldest;
    else
      throw_error(Errc::InvalidArgument,
                  "start must be \"live\", \"oldest\" or a sequence number (got \"" + s + "\")");
  } else if (py::isinstance<py::int_>(start) && !py::isinstance<py::bool_>(start)) {
    const auto v = start.cast<long long>();
    if (v < 0) throw_error(Errc::InvalidArgument, "start sequence must be >= 0");
    o.start = Start::Sequence;
    o.sequence = static_cast<std::uint64_t>(v);
  } else {
    throw_error(Errc::InvalidArgument, "start must be \"live\", \"oldest\" or a sequence number");
  }
}

// JSON text <-> Python objects, through the standard json module (C
// accelerated): FlatBuffers' reflection writes and parses the JSON.
struct JsonModule {
  py::object dumps;
  py::object loads;
};
JsonModule& json() {
  static JsonModule* j = [] {
    py::module_ mod = py::module_::import("json");
    return new JsonModule{mod.attr("dumps"),
                          mod.attr("loads")};  // lives as long as the interpreter
  }();
  return *j;
}

// Codec of a topic's type, built from the schema stored in the segment (so
// any topic decodes, whoever created it). Null on raw topics.
std::shared_ptr<JsonCodec> codec_for(const Topic& t) {
  if (t.type_name().empty()) return nullptr;
  return std::make_shared<JsonCodec>(t.schema(), t.type_name());
}

// Builds a flat message (a table of scalars and strings, as md.Quote) from a
// dict or from an object's attributes (flatc's object API: QuoteT) straight
// with the schema's reflection data: no JSON text in between. The JSON path
// costs ~15 us per Quote (json.dumps, then FlatBuffers' parser) and the
// pure-Python flatbuffers.Builder ~35 us; this one ~1 us. Anything it does
// not handle exactly (a missing or extra key, an enum given by name, a value
// out of range, a nested table or vector) makes build() return false and the
// caller takes the JSON path, whose errors (InvalidJson naming the field)
// stay the documented ones.
class FlatBuilder {
 public:
  FlatBuilder(std::span<const std::uint8_t> bfbs, const std::string& type)
      : bfbs_(bfbs.begin(), bfbs.end()) {
    flatbuffers::Verifier v(bfbs_.data(), bfbs_.size());
    if (!reflection::VerifySchemaBuffer(v)) return;
    const reflection::Schema* schema = reflection::GetSchema(bfbs_.data());
    const reflection::Object* obj = schema->objects()->LookupByKey(type.c_str());
    if (obj == nullptr || obj->is_struct()) return;
    if (schema->file_ident() != nullptr && schema->file_ident()->size() == 4 &&
        schema->root_table() == obj)
      ident_ = schema->file_ident()->str();
    for (const reflection::Field* f : *obj->fields()) {
      if (f->deprecated()) continue;
      const auto bt = f->type()->base_type();
      const bool scalar = bt >= reflection::Bool && bt <= reflection::Double;
      if (!scalar && bt != reflection::String) return;  // not flat: JSON path only
      Field fd;
      fd.f = f;
      fd.name = py::str(f->name()->str());
      // The object API's attribute: bid_px -> bidPx.
      std::string camel;
      bool up = false;
      for (char c : f->name()->str()) {
        if (c == '_') {
          up = true;
          continue;
        }
        camel += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
        up = false;
      }
      fd.attr = py::str(camel);
      fields_.push_back(std::move(fd));
    }
    strings_.resize(fields_.size());
    usable_ = true;
  }

  [[nodiscard]] bool usable() const { return usable_; }

  // Builds into fbb; false (fbb to be discarded) if the source does not fit exactly.
  bool build(PyObject* src, flatbuffers::FlatBufferBuilder& fbb) {
    const bool dict = PyDict_Check(src) != 0;
    std::size_t found = 0;
    values_.assign(fields_.size(), py::object());
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      PyObject* v = nullptr;
      if (dict) {
        v = PyDict_GetItemWithError(src, fields_[i].name.ptr());
        if (v != nullptr) values_[i] = py::reinterpret_borrow<py::object>(v);
      } else {
        v = PyObject_GetAttr(src, fields_[i].attr.ptr());
        if (v == nullptr) {
          PyErr_Clear();
          v = PyObject_GetAttr(src, fields_[i].name.ptr());
        }
        if (v == nullptr) return PyErr_Clear(), false;
        values_[i] = py::reinterpret_steal<py::object>(v);
      }
      if (PyErr_Occurred() != nullptr) return PyErr_Clear(), false;
      if (v != nullptr) ++found;
    }
    if (dict && found != static_cast<std::size_t>(PyDict_GET_SIZE(src))) return false;
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      strings_[i] = 0;
      PyObject* v = values_[i].ptr();
      if (v == nullptr || v == Py_None || fields_[i].f->type()->base_type() != reflection::String)
        continue;
      if (!PyUnicode_Check(v)) return false;
      Py_ssize_t n = 0;
      const char* u = PyUnicode_AsUTF8AndSize(v, &n);
      if (u == nullptr) return PyErr_Clear(), false;
      strings_[i] = fbb.CreateString(u, static_cast<std::size_t>(n)).o;
    }
    const auto start = fbb.StartTable();
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      PyObject* v = values_[i].ptr();
      if (v == nullptr || v == Py_None) continue;
      const reflection::Field* f = fields_[i].f;
      const auto off = f->offset();
      switch (f->type()->base_type()) {
        case reflection::String:
          fbb.AddOffset(off, flatbuffers::Offset<void>(strings_[i]));
          break;
        case reflection::Bool:
          if (!PyBool_Check(v)) return false;
          fbb.AddElement<std::uint8_t>(off, v == Py_True ? 1 : 0, 0);
          break;
        case reflection::Float:
        case reflection::Double: {
          if (!PyFloat_Check(v) && !PyLong_Check(v)) return false;
          const double d = PyFloat_AsDouble(v);
          if (PyErr_Occurred() != nullptr) return PyErr_Clear(), false;
          if (f->type()->base_type() == reflection::Float)
            fbb.AddElement<float>(off, static_cast<float>(d),
                                  static_cast<float>(f->default_real()));
          else
            fbb.AddElement<double>(off, d, f->default_real());
          break;
        }
        default:
          if (!add_int(fbb, f, v)) return false;
      }
    }
    const auto end = fbb.EndTable(start);
    fbb.Finish(flatbuffers::Offset<void>(end), ident_.empty() ? nullptr : ident_.c_str());
    return true;
  }

 private:
  struct Field {
    const reflection::Field* f = nullptr;
    py::str name;
    py::str attr;
  };

  template <class T>
  static bool add_as(flatbuffers::FlatBufferBuilder& fbb, const reflection::Field* f, PyObject* v) {
    if (!PyLong_Check(v) || PyBool_Check(v)) return false;
    if constexpr (std::is_unsigned_v<T>) {
      const unsigned long long x = PyLong_AsUnsignedLongLong(v);
      if (PyErr_Occurred() != nullptr || x > std::numeric_limits<T>::max())
        return PyErr_Clear(), false;
      fbb.AddElement<T>(f->offset(), static_cast<T>(x), static_cast<T>(f->default_integer()));
    } else {
      const long long x = PyLong_AsLongLong(v);
      if (PyErr_Occurred() != nullptr || x > std::numeric_limits<T>::max() ||
          x < std::numeric_limits<T>::min())
        return PyErr_Clear(), false;
      fbb.AddElement<T>(f->offset(), static_cast<T>(x), static_cast<T>(f->default_integer()));
    }
    return true;
  }

  static bool add_int(flatbuffers::FlatBufferBuilder& fbb, const reflection::Field* f,
                      PyObject* v) {
    switch (f->type()->base_type()) {
      case reflection::UType:
      case reflection::UByte:
        return add_as<std::uint8_t>(fbb, f, v);
      case reflection::Byte:
        return add_as<std::int8_t>(fbb, f, v);
      case reflection::Short:
        return add_as<std::int16_t>(fbb, f, v);
      case reflection::UShort:
        return add_as<std::uint16_t>(fbb, f, v);
      case reflection::Int:
        return add_as<std::int32_t>(fbb, f, v);
      case reflection::UInt:
        return add_as<std::uint32_t>(fbb, f, v);
      case reflection::Long:
        return add_as<std::int64_t>(fbb, f, v);
      case reflection::ULong:
        return add_as<std::uint64_t>(fbb, f, v);
      default:
        return false;
    }
  }

  std::vector<std::uint8_t> bfbs_;
  std::string ident_;
  std::vector<Field> fields_;
  std::vector<py::object> values_;
  std::vector<flatbuffers::uoffset_t> strings_;
  bool usable_ = false;
};

// A message to publish as bytes: bytes/bytearray/memoryview, a dict (encoded
// by the topic's schema), or a finished flatbuffers.Builder (its Output()).
// `keep` owns whatever the returned span points into.
std::span<const std::byte> to_payload(const py::handle& obj, const JsonCodec* codec,
                                      const Topic& topic, std::vector<std::byte>& scratch,
                                      py::object& keep, Py_buffer& view, bool& have_view) {
  PyObject* o = obj.ptr();
  if (PyBytes_Check(o)) {
    return {reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(o)),
            static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
  }
  if (PyDict_Check(o)) {
    if (codec == nullptr)
      throw_error(
          Errc::InvalidArgument,
          "topic \"" + topic.name() + "\" is raw (no message type): publish bytes, not a dict");
    const std::string text = json().dumps(obj).cast<std::string>();
    scratch = codec->from_json(text);
    return {scratch.data(), scratch.size()};
  }
  if (PyObject_CheckBuffer(o)) {
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) != 0) throw py::error_already_set();
    have_view = true;
    return {static_cast<const std::byte*>(view.buf), static_cast<std::size_t>(view.len)};
  }
  if (PyObject_HasAttrString(o, "Output")) {  // flatbuffers.Builder after Finish()
    keep = obj.attr("Output")();
    return to_payload(keep, codec, topic, scratch, keep, view, have_view);
  }
  throw_error(Errc::InvalidArgument, std::string("cannot publish a ") + Py_TYPE(o)->tp_name +
                                         ": pass bytes (or any buffer), a dict on a typed topic, "
                                         "or a finished flatbuffers.Builder");
}

struct PayloadHolder {
  std::vector<std::byte> scratch;
  py::object keep;
  Py_buffer view{};
  bool have_view = false;
  ~PayloadHolder() {
    if (have_view) PyBuffer_Release(&view);
  }
};

// Waits `timeout` with the GIL released, in slices, checking for signals
// (Ctrl-C) between them. `wait_slice(slice)` returns whether something is
// ready. Throws error_already_set if a signal handler raised.
template <class F>
bool wait_released(std::chrono::nanoseconds timeout, F&& wait_slice) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const auto left = deadline - now;
    const auto slice = std::min<std::chrono::nanoseconds>(
        left > std::chrono::nanoseconds::zero() ? left : std::chrono::nanoseconds::zero(), 50ms);
    bool ready = false;
    {
      py::gil_scoped_release nogil;
      ready = wait_slice(slice);
    }
    if (ready) return true;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// ------------------------------------------------------------------ Message

struct PyMeta {
  std::string topic;
  std::string type;
  std::uint64_t seq = 0;
  std::int64_t ts_ns = 0;
  std::int64_t age_ns = 0;
  std::uint64_t correlation = 0;
  std::uint32_t producer = 0;
};

// What a subscriber's messages share: topic name, type, codec, clock.
struct TopicContext {
  std::optional<Topic> topic;
  std::shared_ptr<JsonCodec> codec;
  std::string type;
  py::str topic_name;
};

// A message handed to Python. From poll/recv it owns a copy of its bytes
// (`raw` is bytes). Inside a Dispatcher handler it borrows them instead:
// `view` is a read-only memoryview straight over the C++ Message's bytes,
// released when the handler returns, so a use afterwards is a ValueError,
// never a read of memory the bus has reused. What the view sees while the
// handler runs is stable: on a reliable topic the subscriber's cursor is not
// advanced until the handler returns, so the producer cannot rewrite the
// slot; on a lossy topic the bytes were already copied out of the slot and
// validated against its sequence word (core/message.hpp), so the view is a
// consistent message even if the producer laps the slot meanwhile.
struct PyMessage {
  std::shared_ptr<TopicContext> ctx;
  py::bytes raw;
  py::object view;  // borrowed mode: a memoryview, released after the handler
  bool released = false;
  bool copied = false;  // borrowed mode: raw holds a copy (raw_bytes was asked for)
  std::uint64_t seq = 0;
  std::uint64_t raw_ts = 0;
  std::uint64_t correlation = 0;
  std::uint32_t producer = 0;
  std::int64_t received_ns = 0;
  py::object data;  // decoded on first access

  [[nodiscard]] std::int64_t ts_ns() const { return ctx->topic->clock().to_ns(raw_ts); }

  void check_alive(const char* what) const {
    if (released)
      throw py::value_error(std::string("msg.") + what +
                            " used after its handler returned: the message's bytes were borrowed "
                            "from the bus for the handler only; keep bytes(msg.raw) or msg.data "
                            "(taken inside the handler) instead");
  }

  // The bytes, as bytes (a copy in borrowed mode).
  py::bytes get_raw_bytes() {
    if (!view) return raw;
    check_alive("raw_bytes");
    if (!copied) {
      const auto* mv = PyMemoryView_GET_BUFFER(view.ptr());
      raw = py::bytes(static_cast<const char*>(mv->buf), mv->len);
      copied = true;
    }
    return raw;
  }

  [[nodiscard]] py::object get_raw() const { return view ? view : py::object(raw); }

  [[nodiscard]] std::string_view bytes_view() const {
    if (view) {
      check_alive("data");
      const auto* mv = PyMemoryView_GET_BUFFER(view.ptr());
      return {static_cast<const char*>(mv->buf), static_cast<std::size_t>(mv->len)};
    }
    return raw;
  }

  py::object get_data() {
    if (!data) {
      if (!ctx->codec) {
        data = get_raw_bytes();  // raw topic: the bytes are the data
      } else {
        const std::string_view b = bytes_view();
        const std::string text =
            ctx->codec->to_json({reinterpret_cast<const std::byte*>(b.data()), b.size()});
        data = json().loads(py::str(text));
      }
    }
    return data;
  }

  [[nodiscard]] std::size_t size() const {
    if (view) {
      if (released) return 0;
      return static_cast<std::size_t>(PyMemoryView_GET_BUFFER(view.ptr())->len);
    }
    return static_cast<std::size_t>(PyBytes_GET_SIZE(raw.ptr()));
  }
};

PyMessage make_message(const std::shared_ptr<TopicContext>& ctx, const Message& m,
                       bool borrowed = false) {
  PyMessage pm;
  pm.ctx = ctx;
  if (borrowed) {
    // const_cast: the memoryview is created read-only (PyBUF_READ).
    PyObject* mv =
        PyMemoryView_FromMemory(const_cast<char*>(reinterpret_cast<const char*>(m.data.data())),
                                static_cast<Py_ssize_t>(m.data.size()), PyBUF_READ);
    if (mv == nullptr) throw py::error_already_set();
    pm.view = py::reinterpret_steal<py::object>(mv);
  } else {
    pm.raw = py::bytes(reinterpret_cast<const char*>(m.data.data()), m.data.size());
  }
  pm.seq = m.meta.seq;
  pm.raw_ts = m.meta.raw_ts;
  pm.correlation = m.meta.correlation;
  pm.producer = m.meta.producer;
  return pm;
}

struct PyGap {
  std::string topic;
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  std::string reason = "lapped";  // "lapped" or "evicted" (GapReason)
};

// ------------------------------------------------------------------ Bus

struct PyBus {
  std::optional<Bus> bus;
  Bus& get() {
    if (!bus) throw_error(Errc::InvalidArgument, "the Bus is closed");
    return *bus;
  }
};

TopicConfig make_config(const std::optional<std::string>& type, const std::string& policy,
                        std::uint32_t slot_size, std::uint32_t slot_count,
                        std::uint32_t max_consumers, double evict_after) {
  TopicConfig c;
  c.policy = parse_policy(policy);
  c.slot_size = slot_size;
  c.slot_count = slot_count;
  c.max_consumers = max_consumers;
  if (!(evict_after >= 0.0) || evict_after > 86'400.0)
    throw_error(Errc::InvalidArgument,
                "evict_after must be 0 (off) or a number of seconds (the topic's checks apply: "
                "reliable topics only, 1 ms to 1 h)");
  c.evict_after = std::chrono::nanoseconds(static_cast<std::int64_t>(evict_after * 1e9));
  if (type && !type->empty()) c.type = SchemaRegistry::instance().find(*type);
  return c;
}

// ------------------------------------------------------------------ Publisher

struct PyPublisher {
  std::optional<Publisher> pub;
  std::shared_ptr<JsonCodec> codec;
  std::unique_ptr<FlatBuilder> flat;  // typed topics with flat tables: dict/object fast path
  flatbuffers::FlatBufferBuilder fbb{256};
  std::string ident;  // the type's file_identifier ("" if none or raw)

  Publisher& get() {
    if (!pub) throw_error(Errc::InvalidArgument, "the Publisher is closed");
    return *pub;
  }

  PublishResult send(const py::handle& msg, std::optional<double> timeout,
                     std::uint64_t correlation) {
    Publisher& p = get();
    PyObject* o = msg.ptr();
    if (flat && (PyDict_Check(o) || (!PyBytes_Check(o) && !PyObject_CheckBuffer(o) &&
                                     !PyObject_HasAttrString(o, "Output")))) {
      fbb.Clear();
      if (flat->build(o, fbb)) {
        const std::span<const std::byte> payload{
            reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
        if (payload.size() > p.max_payload()) return PublishResult::TooLarge;
        const PublishResult r = p.try_publish(payload, correlation);
        if (r != PublishResult::WouldBlock || !timeout || *timeout <= 0) return r;
        const auto ns = seconds_to_ns(*timeout);
        py::gil_scoped_release nogil;
        return p.publish(payload, ns, correlation);
      }
      if (!PyDict_Check(o))
        throw_error(Errc::InvalidArgument,
                    std::string("cannot publish a ") + Py_TYPE(o)->tp_name + " on topic \"" +
                        p.topic().name() +
                        "\": an object is published by its attributes (flatc's object API, "
                        "e.g. shmbus.msg.md.QuoteT), one per field of a flat table, with values "
                        "of the field's type");
    }
    PayloadHolder h;
    const auto payload =
        to_payload(msg, codec.get(), p.topic(), h.scratch, h.keep, h.view, h.have_view);
    if (payload.size() > p.max_payload()) return PublishResult::TooLarge;
    if (!ident.empty() &&
        (payload.size() < 8 || std::memcmp(payload.data() + 4, ident.data(), 4) != 0))
      return PublishResult::Invalid;  // bytes on a typed topic must carry the type's identifier, as
                                      // in C++
    const PublishResult r = p.try_publish(payload, correlation);
    if (r != PublishResult::WouldBlock || !timeout || *timeout <= 0) return r;
    // Reliable and blocked: wait without the GIL (the payload is owned by h).
    const auto ns = seconds_to_ns(*timeout);
    py::gil_scoped_release nogil;
    return p.publish(payload, ns, correlation);
  }

  // The hot path for bytes: no dict check, no verification.
  PublishResult send_bytes(const py::handle& b, std::optional<double> timeout,
                           std::uint64_t correlation) {
    Publisher& p = get();
    PyObject* o = b.ptr();
    if (PyBytes_Check(o)) {
      const std::span<const std::byte> payload{
          reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(o)),
          static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
      const PublishResult r = p.try_publish(payload, correlation);
      if (r != PublishResult::WouldBlock || !timeout || *timeout <= 0) return r;
      const auto ns = seconds_to_ns(*timeout);
      py::gil_scoped_release nogil;  // the bytes object is kept alive by the caller's reference
      return p.publish(payload, ns, correlation);
    }
    PayloadHolder h;
    const auto payload = to_payload(b, nullptr, p.topic(), h.scratch, h.keep, h.view, h.have_view);
    const PublishResult r = p.try_publish(payload, correlation);
    if (r != PublishResult::WouldBlock || !timeout || *timeout <= 0) return r;
    const auto ns = seconds_to_ns(*timeout);
    py::gil_scoped_release nogil;
    return p.publish(payload, ns, correlation);
  }
};

// ------------------------------------------------------------------ Subscriber

struct PySubscriber {
  std::optional<Subscriber> sub;
  std::shared_ptr<TopicContext> ctx;
  py::object gap_handler;
  std::vector<PyGap> pending_gaps;  // gaps seen while no handler was set

  Subscriber& get() {
    if (!sub) throw_error(Errc::InvalidArgument, "the Subscriber is closed");
    return *sub;
  }

  void install_gap_hook() {
    get().on_gap([this](const Gap& g) {
      PyGap pg{std::string(g.topic), g.first, g.count,
               g.reason == GapReason::Evicted ? "evicted" : "lapped"};
      if (gap_handler && !gap_handler.is_none())
        gap_handler(pg);
      else
        pending_gaps.push_back(pg);
    });
  }

  py::list poll(std::size_t max) {
    Subscriber& s = get();
    py::list out;
    (void)s.poll([&](const Message& m) { out.append(py::cast(make_message(ctx, m))); }, max);
    return out;
  }

  py::list poll_bytes(std::size_t max) {
    Subscriber& s = get();
    py::list out;
    (void)s.poll(
        [&](const Message& m) {
          PyObject* b = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(m.data.data()),
                                                  static_cast<Py_ssize_t>(m.data.size()));
          if (b == nullptr) throw py::error_already_set();
          out.append(py::reinterpret_steal<py::object>(b));
        },
        max);
    return out;
  }

  bool wait(double timeout) {
    Subscriber& s = get();
    if (s.ready()) return true;
    return wait_released(seconds_to_ns(timeout),
                         [&](std::chrono::nanoseconds slice) { return s.wait(slice); });
  }

  // One message or None after `timeout` seconds (None: wait forever).
  py::object recv(std::optional<double> timeout) {
    Subscriber& s = get();
    const auto t =
        timeout ? seconds_to_ns(*timeout) : std::chrono::nanoseconds(std::chrono::hours(24 * 365));
    const auto deadline = std::chrono::steady_clock::now() + t;
    for (;;) {
      py::object got = py::none();
      (void)s.poll([&](const Message& m) { got = py::cast(make_message(ctx, m)); }, 1);
      if (!got.is_none()) return got;
      // Nothing (or only a gap, reported above): wait for more.
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return py::none();
      if (!wait_released(left, [&](std::chrono::nanoseconds slice) { return s.wait(slice); }))
        return py::none();
    }
  }

  // As recv, but bytes only (the fastest receive path).
  py::object recv_bytes(std::optional<double> timeout) {
    Subscriber& s = get();
    const auto t =
        timeout ? seconds_to_ns(*timeout) : std::chrono::nanoseconds(std::chrono::hours(24 * 365));
    const auto deadline = std::chrono::steady_clock::now() + t;
    for (;;) {
      PyObject* got = nullptr;
      (void)s.poll(
          [&](const Message& m) {
            got = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(m.data.data()),
                                            static_cast<Py_ssize_t>(m.data.size()));
          },
          1);
      if (got != nullptr) return py::reinterpret_steal<py::object>(got);
      if (PyErr_Occurred() != nullptr) throw py::error_already_set();
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return py::none();
      if (!wait_released(left, [&](std::chrono::nanoseconds slice) { return s.wait(slice); }))
        return py::none();
    }
  }
};

// ------------------------------------------------------------------ Dispatcher

// A Python loop over a shmbus::Dispatcher: handlers run with the GIL held on
// the thread that calls run(); waiting (Idle::Block) runs without it.
// Exceptions from handlers are logged with their traceback and counted; with
// stop_on_error the first one stops the loop and run() re-raises it.
struct PyDispatcher {
  std::optional<Bus> bus;
  std::unique_ptr<Dispatcher> d;
  std::vector<std::shared_ptr<TopicContext>> contexts;
  py::object gap_handler;
  py::object error_hook;  // error_hook(exc, msg) -> None: logging (set by the Python layer)
  bool stop_on_error = false;
  bool spin = false;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped_once{false};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<bool> running{false};

  void add(const std::string& topic, py::object fn, const std::optional<std::string>& type) {
    if (running.load())
      throw_error(Errc::InvalidArgument, "register handlers before run()/start()");
    const TypeInfo info =
        type && !type->empty() ? SchemaRegistry::instance().find(*type) : TypeInfo::raw();
    auto ctx = std::make_shared<TopicContext>();
    contexts.push_back(ctx);
    d->on_message(topic, info, [this, ctx, fn = std::move(fn)](const Message& m) {
      py::object msg = py::cast(make_message(ctx, m, true));
      // Whatever the handler does, its borrowed view ends with it.
      struct Release {
        py::object& msg;
        ~Release() {
          auto& pm = msg.cast<PyMessage&>();
          pm.released = true;
          PyObject* r = PyObject_CallMethod(pm.view.ptr(), "release", nullptr);
          if (r == nullptr) {
            // BufferError: the handler still exports the buffer (e.g. a numpy
            // array over msg.raw that it kept). Say so; it must copy instead.
            PyErr_Clear();
            if (PyErr_WarnEx(PyExc_RuntimeWarning,
                             "a handler kept a buffer exported from msg.raw past its return: it "
                             "reads bus memory that will be reused; copy it (bytes(msg.raw))",
                             1) != 0)
              PyErr_Clear();
          }
          Py_XDECREF(r);
        }
      } release{msg};
      try {
        fn(msg);
      } catch (py::error_already_set& e) {
        errors.fetch_add(1, std::memory_order_relaxed);
        if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit) || stop_on_error) {
          stopping.store(true);
          throw;
        }
        if (error_hook) error_hook(e.value(), e.trace(), msg);
      }
    });
    // The Dispatcher has subscribed (creating the topic if it was missing);
    // the context needs a handle of its own for the clock and the schema.
    ctx->topic = bus->open_topic(topic);
    ctx->codec = codec_for(*ctx->topic);
    ctx->type = ctx->topic->type_name();
    ctx->topic_name = py::str(topic);
  }

  void run() {
    if (stopped_once.load())
      throw_error(Errc::InvalidArgument, "a stopped Dispatcher cannot run again: make a new one");
    if (running.exchange(true))
      throw_error(Errc::InvalidArgument, "the Dispatcher is already running");
    struct Done {
      std::atomic<bool>& r;
      ~Done() { r.store(false); }
    } done{running};
    while (!stopping.load(std::memory_order_acquire)) {
      if (d->poll_once() != 0) continue;
      if (spin) {
        py::gil_scoped_release nogil;  // let other Python threads in between polls
      } else {
        py::gil_scoped_release nogil;
        (void)d->wait(50ms);
      }
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }

  // Safe from any thread, and from a handler; wakes a blocked wait at once.
  void stop() {
    stopping.store(true, std::memory_order_release);
    stopped_once.store(true);
    py::gil_scoped_release nogil;
    d->stop();  // sets the C++ loop's flag and rings the bus doorbell
  }
};

// ------------------------------------------------------------------ RPC

struct PyRequester {
  std::optional<Requester> req;
  std::shared_ptr<JsonCodec> req_codec;
  std::shared_ptr<JsonCodec> rep_codec;
  std::string service;
};

struct PyReply {
  std::uint64_t correlation = 0;
  std::uint64_t seq = 0;
  std::int64_t ts_ns = 0;
  py::bytes raw;
  std::shared_ptr<JsonCodec> codec;
  py::object data_cache;
  py::object data() {
    if (!data_cache) {
      if (!codec) {
        data_cache = raw;
      } else {
        const std::string_view b = raw;
        data_cache = json().loads(
            py::str(codec->to_json({reinterpret_cast<const std::byte*>(b.data()), b.size()})));
      }
    }
    return data_cache;
  }
};

std::shared_ptr<JsonCodec> codec_of_type(const std::optional<std::string>& type) {
  if (!type || type->empty()) return nullptr;
  return std::make_shared<JsonCodec>(SchemaRegistry::instance().find(*type));
}

std::span<const std::byte> rpc_payload(const py::handle& obj, const JsonCodec* codec,
                                       const std::string& what, PayloadHolder& h) {
  PyObject* o = obj.ptr();
  if (PyDict_Check(o)) {
    if (codec == nullptr)
      throw_error(Errc::InvalidArgument, what + " has no message type: pass bytes, not a dict");
    h.scratch = codec->from_json(json().dumps(obj).cast<std::string>());
    return {h.scratch.data(), h.scratch.size()};
  }
  if (PyBytes_Check(o))
    return {reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(o)),
            static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
  if (PyObject_CheckBuffer(o)) {
    if (PyObject_GetBuffer(o, &h.view, PyBUF_SIMPLE) != 0) throw py::error_already_set();
    h.have_view = true;
    return {static_cast<const std::byte*>(h.view.buf), static_cast<std::size_t>(h.view.len)};
  }
  if (PyObject_HasAttrString(o, "Output")) {
    h.keep = obj.attr("Output")();
    return rpc_payload(h.keep, codec, what, h);
  }
  throw_error(Errc::InvalidArgument,
              std::string("cannot send a ") + Py_TYPE(o)->tp_name +
                  ": pass bytes, a dict (typed service) or a finished flatbuffers.Builder");
}

struct PyResponder {
  std::optional<Responder> rsp;
  std::shared_ptr<JsonCodec> req_codec;
  std::shared_ptr<JsonCodec> rep_codec;
  std::string service;
  std::atomic<bool> stopping{false};
  py::object error_hook;
  std::uint64_t errors = 0;
  Bus bus;

  PyResponder(Bus b, std::string svc) : service(std::move(svc)), bus(std::move(b)) {}

  std::shared_ptr<TopicContext> ctx_for(const Message& m) {
    auto ctx = std::make_shared<TopicContext>();
    // Requests are decoded with the service's request type (the topics' own
    // type would do too, but a raw service has none).
    ctx->codec = req_codec;
    ctx->type = std::string(m.meta.type);
    ctx->topic_name = py::str(std::string(m.meta.topic));
    ctx->topic = bus.open_topic(m.meta.topic);
    return ctx;
  }

  std::size_t poll(const py::object& fn, std::size_t max) {
    if (!rsp) throw_error(Errc::InvalidArgument, "the Responder is closed");
    return rsp->poll(
        [&](const Message& m, ReplyWriter& w) {
          py::object msg = py::cast(make_message(ctx_for(m), m));
          py::object result;
          try {
            result = fn(msg);
          } catch (py::error_already_set& e) {
            ++errors;
            if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit)) throw;
            if (error_hook) error_hook(e.value(), e.trace(), msg);
            return;  // no reply: the caller times out
          }
          if (result.is_none()) return;
          PayloadHolder h;
          const auto payload =
              rpc_payload(result, rep_codec.get(), "service \"" + service + "\"'s reply", h);
          (void)w.reply(payload);
        },
        max);
  }

  void serve(const py::object& fn, std::optional<double> duration) {
    if (!rsp) throw_error(Errc::InvalidArgument, "the Responder is closed");
    const auto deadline = duration ? std::chrono::steady_clock::now() + seconds_to_ns(*duration)
                                   : std::chrono::steady_clock::time_point::max();
    stopping.store(false);
    while (!stopping.load() && std::chrono::steady_clock::now() < deadline) {
      if (poll(fn, 64) != 0) continue;
      {
        py::gil_scoped_release nogil;
        (void)rsp->wait(20ms);
      }
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }
};

// Publisher.try_publish_bytes(b): the per-call hot path as a plain CPython
// method (METH_O): no pybind11 argument dispatch, no GIL release (it never
// waits), and the result is one of the PublishResult objects made once here,
// so nothing is allocated per call. pybind11's dispatch plus a fresh enum
// object per call cost ~0.5 us, as much as the publish itself.
std::array<PyObject*, 8> g_results{};

PyObject* try_publish_bytes(PyObject* self, PyObject* arg) noexcept {
  try {
    auto& pp = py::handle(self).cast<PyPublisher&>();
    Publisher& p = pp.get();
    PublishResult r = PublishResult::Invalid;
    if (PyBytes_Check(arg)) {
      r = p.try_publish({reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(arg)),
                         static_cast<std::size_t>(PyBytes_GET_SIZE(arg))});
    } else {
      Py_buffer view;
      if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) return nullptr;
      r = p.try_publish(
          {static_cast<const std::byte*>(view.buf), static_cast<std::size_t>(view.len)});
      PyBuffer_Release(&view);
    }
    PyObject* out = g_results[static_cast<std::size_t>(r)];
    Py_INCREF(out);
    return out;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const Error& e) {
    PyObject* cls = error_classes().by_code[static_cast<std::size_t>(e.code())];
    PyErr_SetString(cls != nullptr ? cls : error_classes().base, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyMethodDef g_try_publish_bytes{
    "try_publish_bytes", try_publish_bytes, METH_O,
    "try_publish_bytes(data) -> PublishResult: publishes bytes (or any buffer) as they are, "
    "never waiting (WouldBlock on a full reliable topic); the fastest per-call path. The result "
    "is one of the PublishResult members themselves: compare with `is`."};

}  // namespace
}  // namespace shmbus::python

// ====================================================================== module

PYBIND11_MODULE(_shmbus, m) {
  using namespace shmbus;
  using namespace shmbus::python;
  m.doc() = "shmbus: a low-latency shared-memory message bus (C++ core). Use the `shmbus` package.";

  register_errors(m);

  py::enum_<PublishResult>(m, "PublishResult",
                           "Result of a publish; nothing is published unless it is Ok.")
      .value("Ok", PublishResult::Ok, "published")
      .value("TooLarge", PublishResult::TooLarge,
             "larger than the topic's slot: refused, never cut")
      .value("WouldBlock", PublishResult::WouldBlock,
             "reliable topic: a live consumer has not read the slot yet")
      .value("Timeout", PublishResult::Timeout,
             "reliable topic: still blocked when the timeout ran out")
      .value("Invalid", PublishResult::Invalid,
             "bytes on a typed topic that are not a message of its type");

  py::class_<PyMeta>(m, "MessageMeta",
                     "Where a message comes from: topic, sequence, publish time, producer.")
      .def_readonly("topic", &PyMeta::topic, "topic name")
      .def_readonly("type", &PyMeta::type,
                    "fully qualified FlatBuffers root type, '' on raw topics")
      .def_readonly("seq", &PyMeta::seq, "1, 2, 3, ... per topic, gap-free as published")
      .def_readonly("ts_ns", &PyMeta::ts_ns, "publish time, ns since the epoch (bus clock)")
      .def_readonly("age_ns", &PyMeta::age_ns,
                    "bus-clock now minus publish time when meta was read")
      .def_readonly("correlation", &PyMeta::correlation, "request/reply correlation id, 0 if none")
      .def_readonly("producer", &PyMeta::producer, "pid of the publishing process")
      .def(
          "__repr__",
          [](const PyMeta& x) {
            return "MessageMeta(topic='" + x.topic + "', seq=" + std::to_string(x.seq) +
                   ", ts_ns=" + std::to_string(x.ts_ns) + ", age_ns=" + std::to_string(x.age_ns) +
                   ", producer=" + std::to_string(x.producer) + ", type='" + x.type + "')";
          },
          "the meta as text");

  py::class_<PyMessage>(
      m, "Message",
      "A delivered message. From poll/recv it owns a copy of its bytes; in a Dispatcher handler "
      "msg.raw borrows them (a memoryview valid inside the handler).")
      .def_property_readonly(
          "raw", &PyMessage::get_raw,
          "the message's bytes: bytes from poll/recv; in a Dispatcher handler a zero-copy "
          "read-only memoryview over the bus's bytes, released when the handler returns (a use "
          "afterwards raises ValueError; keep bytes(msg.raw) instead)")
      .def_property_readonly("raw_bytes", &PyMessage::get_raw_bytes,
                             "the message's bytes as bytes (a copy if msg.raw is a memoryview)")
      .def_property_readonly(
          "data", &PyMessage::get_data,
          "the message as a dict (typed topics; decoded on first access) or its bytes (raw)")
      .def_property_readonly(
          "seq", [](const PyMessage& x) { return x.seq; }, "sequence number on the topic")
      .def_property_readonly("ts_ns", &PyMessage::ts_ns,
                             "publish time, ns since the epoch (bus clock)")
      .def_property_readonly(
          "correlation", [](const PyMessage& x) { return x.correlation; },
          "request/reply correlation id, 0 if none")
      .def_property_readonly(
          "meta",
          [](const PyMessage& x) {
            PyMeta meta;
            meta.topic = x.ctx->topic_name.cast<std::string>();
            meta.type = x.ctx->type;
            meta.seq = x.seq;
            meta.ts_ns = x.ts_ns();
            meta.age_ns = x.ctx->topic->clock().now_ns() - meta.ts_ns;
            meta.correlation = x.correlation;
            meta.producer = x.producer;
            return meta;
          },
          "a MessageMeta (topic, seq, ts_ns, age_ns, producer, type)")
      .def(
          "as_",
          [](const PyMessage& x, const py::object& cls) {
            if (x.view) x.check_alive("as_");
            return cls.attr("GetRootAs")(x.get_raw(), 0);
          },
          py::arg("cls"),
          "the generated FlatBuffers class over the bytes: msg.as_(shmbus.msg.md.Quote)")
      .def(
          "__len__", [](const PyMessage& x) { return x.size(); },
          "the message's size in bytes (0 once a borrowed view is released)")
      .def(
          "__repr__",
          [](const PyMessage& x) {
            return "Message(topic='" + x.ctx->topic_name.cast<std::string>() +
                   "', seq=" + std::to_string(x.seq) + ", " + std::to_string(x.size()) + " bytes)";
          },
          "the message as text");

  py::class_<PyGap>(
      m, "Gap", "Sequences [first, first + count) were lost (overwritten before they were read).")
      .def_readonly("topic", &PyGap::topic, "the topic that lost messages")
      .def_readonly("first", &PyGap::first, "the first lost sequence number")
      .def_readonly("count", &PyGap::count, "how many consecutive sequences were lost")
      .def_readonly("reason", &PyGap::reason,
                    "'lapped' (a whole ring behind) or 'evicted' (held a reliable topic with "
                    "evict_after past its bound; registered again at the next live message)")
      .def(
          "__repr__",
          [](const PyGap& g) {
            return "Gap(topic='" + g.topic + "', first=" + std::to_string(g.first) +
                   ", count=" + std::to_string(g.count) + ", reason='" + g.reason + "')";
          },
          "the gap as text");

  // ---------------------------------------------------------------- Bus
  py::class_<PyBus>(
      m, "Bus", "A bus: a named set of topics in shared memory on this host. A context manager.")
      .def_static(
          "open_or_create",
          [](const std::string& name, std::uint32_t capacity) {
            BusOptions o;
            o.capacity = capacity;
            return PyBus{Bus::open_or_create(name, o)};
          },
          py::arg("name"), py::arg("capacity") = 1024,
          "Opens the bus, creating it if it does not exist.")
      .def_static(
          "open",
          [](const std::string& name, bool read_only) {
            return PyBus{Bus::open(name, read_only ? Access::ReadOnly : Access::ReadWrite)};
          },
          py::arg("name"), py::arg("read_only") = false,
          "Opens an existing bus (NoSuchBus if there is none).")
      .def_static("exists", &Bus::exists, py::arg("name"), "Whether the bus exists.")
      .def_static("list", &Bus::list, "Names of every bus on this host, sorted.")
      .def_static("remove", &Bus::remove, py::arg("name"),
                  "Unlinks the bus and all its topics (use when nothing runs on it); returns how "
                  "many segments.")
      .def_property_readonly(
          "name", [](PyBus& b) { return b.get().name(); }, "the bus's name")
      .def(
          "topic_names", [](PyBus& b) { return b.get().topic_names(); },
          "Topics in the directory, sorted.")
      .def(
          "has_topic", [](PyBus& b, const std::string& t) { return b.get().has_topic(t); },
          py::arg("topic"), "Whether the topic exists on the bus.")
      .def(
          "wait_for_topic",
          [](PyBus& b, const std::string& t, double timeout) {
            Bus& bus = b.get();
            const auto deadline = std::chrono::steady_clock::now() + seconds_to_ns(timeout);
            for (;;) {
              const auto left = deadline - std::chrono::steady_clock::now();
              const auto slice = std::min<std::chrono::nanoseconds>(
                  std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds::zero()), 50ms);
              try {
                py::gil_scoped_release nogil;
                (void)bus.wait_for_topic(t, slice);
                return;
              } catch (const Error& e) {
                if (e.code() != Errc::Timeout || std::chrono::steady_clock::now() >= deadline)
                  throw;
              }
              if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            }
          },
          py::arg("topic"), py::arg("timeout"),
          "Waits until the topic exists (Timeout if it does not appear).")
      .def(
          "publisher",
          [](PyBus& b, const std::string& topic, std::optional<std::string> type,
             const std::string& policy, std::uint32_t slot_size, std::uint32_t slot_count,
             std::uint32_t max_consumers, const std::string& name, double evict_after) {
            Bus& bus = b.get();
            PublisherOptions po;
            po.name = name;
            auto pp = std::make_unique<PyPublisher>();
            pp->pub.emplace(bus.topic(topic,
                                      make_config(type, policy, slot_size, slot_count,
                                                  max_consumers, evict_after),
                                      Match::Exact),
                            po);
            pp->codec = codec_for(pp->pub->topic());
            if (pp->codec) {
              auto fb = std::make_unique<FlatBuilder>(pp->pub->topic().schema(),
                                                      pp->pub->topic().type_name());
              if (fb->usable()) pp->flat = std::move(fb);
            }
            if (!pp->pub->topic().type_name().empty() &&
                SchemaRegistry::instance().contains(pp->pub->topic().type_name()))
              pp->ident =
                  SchemaRegistry::instance().find(pp->pub->topic().type_name()).file_identifier;
            if (pp->ident.size() != 4) pp->ident.clear();
            return pp;
          },
          py::arg("topic"), py::kw_only(), py::arg("type") = py::none(),
          py::arg("policy") = "lossy", py::arg("slot_size") = 256, py::arg("slot_count") = 4096,
          py::arg("max_consumers") = 32, py::arg("name") = "", py::arg("evict_after") = 0.0,
          "Takes the producer role of a topic, creating it with this config (TopicMismatch if it "
          "exists with another one). evict_after (seconds, reliable topics only, 0 = off): a "
          "consumer that holds the producer at one message that long is evicted and told by a "
          "Gap with reason 'evicted'.")
      .def(
          "subscriber",
          [](PyBus& b, const std::string& topic, const std::string& name, const py::object& start,
             std::optional<std::string> type, std::optional<double> wait, bool verify,
             bool register_consumer, std::optional<std::string> policy, std::uint32_t slot_size,
             std::uint32_t slot_count, std::uint32_t max_consumers, double evict_after) {
            Bus& bus = b.get();
            SubscriberOptions so;
            so.name = name;
            so.verify = verify;
            so.register_consumer = register_consumer;
            parse_start(start, so);
            auto ps = std::make_unique<PySubscriber>();
            std::optional<Topic> t;
            if (wait) {
              const double w = *wait;
              // Wait for the producer to create the topic, without the GIL.
              const auto deadline = std::chrono::steady_clock::now() + seconds_to_ns(w);
              while (!bus.has_topic(topic)) {
                if (std::chrono::steady_clock::now() >= deadline)
                  throw_error(Errc::Timeout, "topic \"" + topic + "\" did not appear on bus \"" +
                                                 bus.name() + "\" within " + std::to_string(w) +
                                                 " s: is its producer running?");
                {
                  py::gil_scoped_release nogil;
                  std::this_thread::sleep_for(1ms);
                }
                if (PyErr_CheckSignals() != 0) throw py::error_already_set();
              }
            }
            if (policy) {
              // A full config: create the topic or check it exactly, as a publisher would.
              t.emplace(bus.topic(
                  topic,
                  make_config(type, *policy, slot_size, slot_count, max_consumers, evict_after),
                  Match::Exact));
            } else {
              TopicConfig c;
              if (type && !type->empty()) c.type = SchemaRegistry::instance().find(*type);
              t.emplace(bus.topic(topic, c, Match::TypeOnly));
            }
            ps->sub.emplace(*t, so);
            ps->ctx = std::make_shared<TopicContext>();
            ps->ctx->topic = *t;
            ps->ctx->codec = codec_for(*t);
            ps->ctx->type = t->type_name();
            ps->ctx->topic_name = py::str(topic);
            ps->install_gap_hook();
            return ps;
          },
          py::arg("topic"), py::kw_only(), py::arg("name") = "", py::arg("start") = "live",
          py::arg("type") = py::none(), py::arg("wait") = py::none(), py::arg("verify") = false,
          py::arg("register") = true, py::arg("policy") = py::none(), py::arg("slot_size") = 256,
          py::arg("slot_count") = 4096, py::arg("max_consumers") = 32, py::arg("evict_after") = 0.0,
          "Subscribes to a topic. start: 'live', 'oldest' or a sequence number. type: check the "
          "topic carries "
          "it (TypeMismatch). wait: seconds to wait for the producer to create the topic (else a "
          "missing "
          "topic is created with the defaults). policy (with slot_size, slot_count, "
          "max_consumers, evict_after): create "
          "the topic with this config, or check it exactly (TopicMismatch), as a publisher does.")
      .def(
          "close", [](PyBus& b) { b.bus.reset(); },
          "Releases this handle (topics opened from it stay mapped).")
      .def(
          "__enter__", [](py::object self) { return self; },
          "The object itself (a context manager).")
      .def(
          "__exit__", [](PyBus& b, py::args) { b.bus.reset(); }, "Closes it.")
      .def("__repr__", [](PyBus& b) {
        return b.bus ? "Bus('" + b.bus->name() + "')" : std::string("Bus(closed)");
      });

  // ---------------------------------------------------------------- Publisher
  py::class_<PyPublisher>(
      m, "Publisher", "The producer of a topic (one live producer per topic). A context manager.")
      .def("publish", &PyPublisher::send, py::arg("msg"), py::arg("timeout") = 1.0,
           py::arg("correlation") = 0,
           "Publishes a dict (typed topics: converted by the topic's schema; InvalidJson naming "
           "the field if it "
           "does not fit, nothing published), an object of flatc's object API (QuoteT: built in "
           "C++ from its attributes, the fast typed path), bytes or a finished "
           "flatbuffers.Builder. On a "
           "reliable topic "
           "waits up to `timeout` seconds for the slowest consumer. Returns a PublishResult.")
      .def(
          "try_publish",
          [](PyPublisher& p, const py::handle& msg, std::uint64_t correlation) {
            return p.send(msg, std::nullopt, correlation);
          },
          py::arg("msg"), py::arg("correlation") = 0, "As publish, but never waits (WouldBlock).")
      .def("publish_bytes", &PyPublisher::send_bytes, py::arg("data"), py::arg("timeout") = 1.0,
           py::arg("correlation") = 0,
           "Publishes bytes (or any buffer) as they are: the fastest path.")
      .def(
          "publish_many",
          [](PyPublisher& pp, const py::list& items) {
            // One Python call for a batch: the per-call binding overhead
            // (~0.3 us) is paid once, not per message. Stops at the first
            // message that is not published (WouldBlock on a full reliable
            // ring, TooLarge): returns how many were.
            Publisher& p = pp.get();
            const Py_ssize_t n = PyList_GET_SIZE(items.ptr());
            for (Py_ssize_t i = 0; i < n; ++i) {
              PyObject* o = PyList_GET_ITEM(items.ptr(), i);
              if (!PyBytes_Check(o))
                throw_error(Errc::InvalidArgument, "publish_many takes a list of bytes");
              const std::span<const std::byte> payload{
                  reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(o)),
                  static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
              if (p.try_publish(payload) != PublishResult::Ok) return static_cast<std::size_t>(i);
            }
            return static_cast<std::size_t>(n);
          },
          py::arg("items"),
          "Publishes a list of bytes in order, never waiting; returns how many were published.")
      .def_property_readonly(
          "topic", [](PyPublisher& p) { return p.get().topic().name(); }, "the topic's name")
      .def_property_readonly(
          "type", [](PyPublisher& p) { return p.get().topic().type_name(); },
          "the topic's message type ('' on raw topics)")
      .def_property_readonly(
          "policy", [](PyPublisher& p) { return std::string(to_string(p.get().topic().policy())); },
          "\"lossy\" or \"reliable\"")
      .def_property_readonly(
          "next_sequence", [](PyPublisher& p) { return p.get().next_sequence(); },
          "the sequence number the next message gets")
      .def_property_readonly(
          "max_payload", [](PyPublisher& p) { return p.get().max_payload(); },
          "the largest message the topic's slots hold, in bytes")
      .def_property_readonly(
          "took_over", [](PyPublisher& p) { return p.get().took_over(); },
          "True if this publisher took the topic over from a dead producer")
      .def(
          "close", [](PyPublisher& p) { p.pub.reset(); }, "Releases the producer role.")
      .def(
          "__enter__", [](py::object self) { return self; },
          "The object itself (a context manager).")
      .def(
          "__exit__", [](PyPublisher& p, py::args) { p.pub.reset(); }, "Closes it.");

  {
    // The PublishResult members (kept alive by the class) and the fast method.
    const py::object results = m.attr("PublishResult");
    const std::array<std::pair<PublishResult, const char*>, 5> members{{
        {PublishResult::Ok, "Ok"},
        {PublishResult::TooLarge, "TooLarge"},
        {PublishResult::WouldBlock, "WouldBlock"},
        {PublishResult::Timeout, "Timeout"},
        {PublishResult::Invalid, "Invalid"},
    }};
    for (const auto& [r, name] : members)
      g_results[static_cast<std::size_t>(r)] = results.attr(name).ptr();
    const py::object pub_cls = m.attr("Publisher");
    PyObject* descr =
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(pub_cls.ptr()), &g_try_publish_bytes);
    if (descr == nullptr) throw py::error_already_set();
    pub_cls.attr("try_publish_bytes") = py::reinterpret_steal<py::object>(descr);
  }
  // ---------------------------------------------------------------- Subscriber
  py::class_<PySubscriber>(m, "Subscriber",
                           "A consumer of a topic. Iterable (blocking). A context manager.")
      .def("poll", &PySubscriber::poll, py::arg("max") = 64,
           "Up to `max` ready messages, in order; never blocks.")
      .def("poll_bytes", &PySubscriber::poll_bytes, py::arg("max") = 64,
           "As poll, but only each message's bytes (the fastest path).")
      .def("wait", &PySubscriber::wait, py::arg("timeout"),
           "Blocks (without the GIL) until something is ready or `timeout` seconds pass; returns "
           "whether ready.")
      .def("recv", &PySubscriber::recv, py::arg("timeout") = py::none(),
           "The next message, waiting up to `timeout` seconds (None: forever); None on timeout.")
      .def("recv_bytes", &PySubscriber::recv_bytes, py::arg("timeout") = py::none(),
           "As recv, but the message's bytes only.")
      .def(
          "on_gap", [](PySubscriber& s, py::object fn) { s.gap_handler = std::move(fn); },
          py::arg("fn"), "fn(Gap) is called from poll/recv before the message that follows a loss.")
      .def(
          "take_gaps",
          [](PySubscriber& s) {
            auto g = std::move(s.pending_gaps);
            s.pending_gaps.clear();
            return g;
          },
          "Gaps seen while no on_gap handler was set (and forgets them).")
      .def_property_readonly(
          "ready", [](PySubscriber& s) { return s.get().ready(); },
          "whether a message (or gap) is ready to poll")
      .def_property_readonly(
          "drops", [](PySubscriber& s) { return s.get().drops(); }, "messages lost in total")
      .def_property_readonly(
          "delivered", [](PySubscriber& s) { return s.get().delivered(); },
          "messages delivered so far")
      .def_property_readonly(
          "next_sequence", [](PySubscriber& s) { return s.get().next_sequence(); },
          "the sequence number of the next message to deliver")
      .def_property_readonly(
          "topic", [](PySubscriber& s) { return s.get().topic().name(); }, "the topic's name")
      .def_property_readonly(
          "type", [](PySubscriber& s) { return s.get().topic().type_name(); },
          "the topic's message type ('' on raw topics)")
      .def_property_readonly(
          "policy",
          [](PySubscriber& s) { return std::string(to_string(s.get().topic().policy())); },
          "\"lossy\" or \"reliable\"")
      .def(
          "close", [](PySubscriber& s) { s.sub.reset(); }, "Leaves the consumer table.")
      .def(
          "__enter__", [](py::object self) { return self; },
          "The object itself (a context manager).")
      .def(
          "__exit__", [](PySubscriber& s, py::args) { s.sub.reset(); }, "Closes it.")
      .def(
          "__iter__", [](py::object self) { return self; },
          "The subscriber itself: `for msg in sub` blocks for each message.")
      .def(
          "__next__",
          [](PySubscriber& s) {
            py::object got = s.recv(std::nullopt);
            if (got.is_none()) throw py::stop_iteration();
            return got;
          },
          "The next message, waiting for it (without the GIL).");

  // ---------------------------------------------------------------- Dispatcher
  py::class_<PyDispatcher>(m, "_Dispatcher")
      .def(py::init([](PyBus& b, const std::string& name, const std::string& start,
                       bool stop_on_error, const std::string& idle, std::size_t batch) {
             auto d = std::make_unique<PyDispatcher>();
             DispatcherOptions o;
             o.name = name;
             o.idle = Idle::Block;
             o.batch = batch;
             SubscriberOptions so;
             parse_start(py::str(start), so);
             o.start = so.start;
             if (idle != "block" && idle != "spin")
               throw_error(Errc::InvalidArgument,
                           "idle must be \"block\" or \"spin\" (got \"" + idle + "\")");
             d->spin = idle == "spin";
             d->bus = b.get();
             d->d = std::make_unique<Dispatcher>(b.get(), o);
             d->stop_on_error = stop_on_error;
             return d;
           }),
           py::arg("bus"), py::arg("name") = "", py::arg("start") = "live",
           py::arg("stop_on_error") = false, py::arg("idle") = "block", py::arg("batch") = 64,
           py::keep_alive<1, 2>())
      .def("add", &PyDispatcher::add, py::arg("topic"), py::arg("fn"), py::arg("type") = py::none())
      .def("set_gap_handler",
           [](PyDispatcher& d, py::object fn) {
             d.gap_handler = fn;
             d.d->on_gap([&d](const Gap& g) {
               if (d.gap_handler && !d.gap_handler.is_none())
                 d.gap_handler(PyGap{std::string(g.topic), g.first, g.count});
             });
           })
      .def("set_error_hook", [](PyDispatcher& d, py::object fn) { d.error_hook = std::move(fn); })
      .def("poll_once", [](PyDispatcher& d) { return d.d->poll_once(); })
      .def("run", &PyDispatcher::run)
      .def("stop", &PyDispatcher::stop)
      .def_property_readonly("running", [](PyDispatcher& d) { return d.running.load(); })
      .def_property_readonly("stopping", [](PyDispatcher& d) { return d.stopping.load(); })
      .def_property_readonly("errors", [](PyDispatcher& d) { return d.errors.load(); })
      .def_property_readonly("delivered", [](PyDispatcher& d) { return d.d->delivered(); })
      .def_property_readonly("drops", [](PyDispatcher& d) { return d.d->drops(); });

  // ---------------------------------------------------------------- RPC
  py::class_<PyReply>(m, "Reply", "A reply to Requester.call.")
      .def_readonly("raw", &PyReply::raw, "the reply's bytes")
      .def_property_readonly("data", &PyReply::data,
                             "the reply as a dict (typed reply) or its bytes")
      .def_readonly("correlation", &PyReply::correlation,
                    "the correlation id of the request it answers")
      .def_readonly("seq", &PyReply::seq, "sequence number on the reply topic")
      .def_readonly("ts_ns", &PyReply::ts_ns, "reply publish time, ns since the epoch (bus clock)")
      .def(
          "as_",
          [](const PyReply& r, const py::object& cls) { return cls.attr("GetRootAs")(r.raw, 0); },
          "the generated FlatBuffers class over the reply's bytes");

  py::class_<PyRequester>(m, "Requester", "The client side of a request/reply service.")
      .def(
          py::init([](PyBus& b, const std::string& service, std::optional<std::string> request_type,
                      std::optional<std::string> reply_type, const std::string& client) {
            auto r = std::make_unique<PyRequester>();
            RpcConfig c;
            if (request_type && !request_type->empty())
              c.request.type = SchemaRegistry::instance().find(*request_type);
            if (reply_type && !reply_type->empty())
              c.reply.type = SchemaRegistry::instance().find(*reply_type);
            r->req.emplace(b.get(), service, c, client);
            r->req_codec = codec_of_type(request_type);
            r->rep_codec = codec_of_type(reply_type);
            r->service = service;
            return r;
          }),
          py::arg("bus"), py::arg("service"), py::kw_only(), py::arg("request_type") = py::none(),
          py::arg("reply_type") = py::none(), py::arg("client") = "")
      .def(
          "call",
          [](PyRequester& r, const py::object& request, double timeout) {
            if (!r.req) throw_error(Errc::InvalidArgument, "the Requester is closed");
            PayloadHolder h;
            const auto payload =
                rpc_payload(request, r.req_codec.get(), "service \"" + r.service + "\"", h);
            const auto ns = seconds_to_ns(timeout);
            Reply rep;
            {
              py::gil_scoped_release nogil;
              rep = r.req->call(payload, ns);
            }
            if (rep.status == RpcStatus::Timeout)
              throw_error(Errc::Timeout, "no reply from service \"" + r.service + "\" within " +
                                             std::to_string(timeout * 1e3) +
                                             " ms: its Responder is slow or busy");
            if (rep.status == RpcStatus::NoResponder)
              throw_error(
                  Errc::Timeout,
                  "no reply from service \"" + r.service + "\" within " +
                      std::to_string(timeout * 1e3) +
                      " ms, and no Responder serves it: start one (the request waits for it)");
            if (rep.status == RpcStatus::SendFailed)
              throw_error(rep.send_result == PublishResult::TooLarge ? Errc::InvalidArgument
                                                                     : Errc::Timeout,
                          "request to service \"" + r.service +
                              "\" not sent: " + std::string(to_string(rep.send_result)));
            PyReply out;
            out.correlation = rep.correlation;
            out.seq = rep.seq;
            out.ts_ns = rep.ts_ns;
            out.raw =
                py::bytes(reinterpret_cast<const char*>(rep.payload.data()), rep.payload.size());
            out.codec = r.rep_codec;
            return out;
          },
          py::arg("request"), py::arg("timeout") = 1.0,
          "Sends a request (dict on a typed service, bytes, or a finished Builder) and waits for "
          "its reply; "
          "Timeout if none arrives within `timeout` seconds.")
      .def_property_readonly(
          "late_replies", [](PyRequester& r) { return r.req->late_replies(); },
          "replies that arrived after their call timed out")
      .def_property_readonly(
          "client", [](PyRequester& r) { return r.req->client(); },
          "this requester's client name (its reply topic)")
      .def(
          "close", [](PyRequester& r) { r.req.reset(); }, "Closes the requester.")
      .def(
          "__enter__", [](py::object self) { return self; },
          "The object itself (a context manager).")
      .def(
          "__exit__", [](PyRequester& r, py::args) { r.req.reset(); }, "Closes it.");

  py::class_<PyResponder>(m, "Responder", "The server side of a request/reply service.")
      .def(
          py::init([](PyBus& b, const std::string& service, std::optional<std::string> request_type,
                      std::optional<std::string> reply_type, const std::string& name) {
            RpcConfig c;
            if (request_type && !request_type->empty())
              c.request.type = SchemaRegistry::instance().find(*request_type);
            if (reply_type && !reply_type->empty())
              c.reply.type = SchemaRegistry::instance().find(*reply_type);
            auto r = std::make_unique<PyResponder>(b.get(), service);
            r->rsp.emplace(b.get(), service, c, name);
            r->req_codec = codec_of_type(request_type);
            r->rep_codec = codec_of_type(reply_type);
            return r;
          }),
          py::arg("bus"), py::arg("service"), py::kw_only(), py::arg("request_type") = py::none(),
          py::arg("reply_type") = py::none(), py::arg("name") = "")
      .def("poll", &PyResponder::poll, py::arg("fn"), py::arg("max") = 64,
           "Handles up to `max` ready requests: fn(Message) returns the reply (dict, bytes, "
           "Builder) or None.")
      .def("serve", &PyResponder::serve, py::arg("fn"), py::arg("duration") = py::none(),
           "Serves requests with fn until stop() (or `duration` seconds), waiting without the GIL.")
      .def(
          "stop", [](PyResponder& r) { r.stopping.store(true); },
          "Makes serve() return (within ~20 ms).")
      .def(
          "set_error_hook", [](PyResponder& r, py::object fn) { r.error_hook = std::move(fn); },
          "fn(exc, traceback, msg) for each handler exception (set by the package: logs it).")
      .def_property_readonly(
          "errors", [](PyResponder& r) { return r.errors; }, "handler exceptions so far")
      .def_property_readonly(
          "clients", [](PyResponder& r) { return r.rsp->clients(); }, "clients seen so far")
      .def_property_readonly(
          "failed_replies", [](PyResponder& r) { return r.rsp->failed_replies(); },
          "replies that could not be published")
      .def(
          "close", [](PyResponder& r) { r.rsp.reset(); }, "Closes the responder.")
      .def(
          "__enter__", [](py::object self) { return self; },
          "The object itself (a context manager).")
      .def(
          "__exit__", [](PyResponder& r, py::args) { r.rsp.reset(); }, "Closes it.");

  // ---------------------------------------------------------------- schemas
  m.def(
      "type_names", [] { return SchemaRegistry::instance().type_names(); },
      "Names of every registered message type, sorted.");
  m.def(
      "add_schema",
      [](const py::bytes& bfbs) {
        const std::string_view b = bfbs;
        SchemaRegistry::instance().add({reinterpret_cast<const std::uint8_t*>(b.data()), b.size()});
      },
      py::arg("bfbs"), "Registers a binary schema (flatc --binary --schema output).");
  m.def(
      "to_json",
      [](const std::string& type, const py::bytes& msg) {
        const std::string_view b = msg;
        return JsonCodec(SchemaRegistry::instance().find(type))
            .to_json({reinterpret_cast<const std::byte*>(b.data()), b.size()});
      },
      py::arg("type"), py::arg("msg"),
      "A message of `type` as JSON text (InvalidMessage if it does not verify).");
  m.def(
      "from_json",
      [](const std::string& type, const std::string& json_text) {
        const auto v = JsonCodec(SchemaRegistry::instance().find(type)).from_json(json_text);
        return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
      },
      py::arg("type"), py::arg("json"),
      "A finished message of `type` from JSON text (InvalidJson naming the field).");
}
