// shmbus — JSON <-> FlatBuffer for one root type, by reflection.
//
// Design
//
//   A JsonCodec owns a copy of the binary schema and a flatbuffers::Parser
//   rebuilt from it (Parser::Deserialize), with the root type set:
//
//     from_json:  text --Parser::ParseJson--> builder, finished with the
//                 file_identifier (only when the type is the schema's
//                 root_type: the identifier names the root type, so another
//                 table of the file gets none)
//     to_json:    bytes --checks + flatbuffers::Verify--> GenerateText
//
//   No byte of a message is read before it has passed the reflection
//   verifier: the size and root-offset checks below exist because
//   flatbuffers::Verify() itself reads the root offset before checking the
//   length.
//
//   Output is strict JSON on one line, every scalar printed (defaults too),
//   enums by name. Two limits of FlatBuffers 2.0.8's text generator, handled
//   here:
//     * NaN and infinities come out as bare nan/inf, which is not JSON. They
//       are rewritten to the strings "NaN", "Infinity", "-Infinity" (as
//       protobuf's JSON mapping does), which ParseJson reads back as numbers.
//     * doubles are printed with 12 decimals (fixed notation): magnitudes
//       below 5e-13 print as 0.0 and digits beyond the 12th decimal are
//       rounded. Prices, quantities and P&L are far from either limit.
//
//   After a failed parse the Parser is rebuilt: its internal stacks are not
//   guaranteed to be clean after an error, and the error path can afford the
//   rebuild.
//
// Thread safety: from_json() and to_json() use the stateful Parser, append_json() the codec's
// scratch buffer: one codec per thread. verify() only reads the schema and may run
// concurrently.
#include "shmbus/schema/json_codec.hpp"
#include "shmbus/schema/verifier.hpp"

#include "shmbus/error.hpp"

#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>
#include <flatbuffers/reflection_generated.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "schema_internal.hpp"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "shmbus/detail/json_number.hpp"

namespace shmbus {
namespace {

std::string_view view(const flatbuffers::String* s) noexcept {
  return s == nullptr ? std::string_view{} : std::string_view(s->c_str(), s->size());
}

std::unique_ptr<flatbuffers::Parser> make_parser(const std::vector<std::uint8_t>& bfbs,
                                                 const std::string& type_name,
                                                 const std::string& file_identifier) {
  flatbuffers::IDLOptions opts;
  opts.strict_json = true;                     // quoted keys, no trailing commas, in and out
  opts.indent_step = -1;                       // one line
  opts.output_default_scalars_in_json = true;  // a reader sees every scalar
  opts.output_enum_identifiers = true;
  auto parser = std::make_unique<flatbuffers::Parser>(opts);
  // checked_schema() ran first, so these can only fail on a FlatBuffers bug.
  if (!parser->Deserialize(bfbs.data(), bfbs.size()))
    throw Error(Errc::InvalidMessage,
                "JsonCodec: FlatBuffers could not load the binary schema of " + type_name + " (" +
                    parser->error_ + ").");
  if (!parser->SetRootType(type_name.c_str()))
    throw Error(Errc::UnknownType, "JsonCodec: FlatBuffers cannot use " + type_name +
                                       " as a root type (" + parser->error_ + ").");
  parser->file_identifier_ = file_identifier;
  return parser;
}

// GenerateText prints non-finite doubles as bare nan / -nan / inf / -inf.
// Outside string literals (keys and string values are always quoted) the only
// bare words it emits are true and false, so any other word is one of those.
// Appends to `out`; with drop_blanks, without the blanks outside strings (append_json's
// fallback: {"a":1} where GenerateText writes {"a": 1}).
void strict_numbers(const std::string& text, std::string& out, bool drop_blanks) {
  if (!drop_blanks && text.find_first_of("ni") == std::string::npos) {
    out += text;
    return;
  }
  out.reserve(out.size() + text.size() + 16);
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    if (drop_blanks && (c == ' ' || c == '\n' || c == '\t' || c == '\r')) continue;
    const bool negative =
        c == '-' && i + 1 < text.size() && (text[i + 1] == 'n' || text[i + 1] == 'i');
    if (c != 'n' && c != 'i' && !negative) {
      out += c;
      continue;
    }
    const std::size_t begin = negative ? i + 1 : i;
    std::size_t end = begin;
    while (end < text.size() &&
           ((text[end] >= 'a' && text[end] <= 'z') || (text[end] >= 'A' && text[end] <= 'Z')))
      ++end;
    const std::string_view word(text.data() + begin, end - begin);
    if (word == "nan")
      out += "\"NaN\"";
    else if (word == "inf")
      out += negative ? "\"-Infinity\"" : "\"Infinity\"";
    else
      out.append(text, i, end - i);
    i = end - 1;
  }
}

// ---------------------------------------------------------------- error messages

// Where the parser stopped, from its "line: column: error: reason" text.
struct ParseFailure {
  int line = 0;
  int column = 0;
  std::string reason;
};

ParseFailure parse_failure(const std::string& error) {
  ParseFailure f;
  const auto at = error.rfind("error: ");
  if (at == std::string::npos) {
    f.reason = error;
    return f;
  }
  f.reason = error.substr(at + 7);
  const auto line_start = error.rfind('\n', at);
  std::string_view head(error.data() + (line_start == std::string::npos ? 0 : line_start + 1),
                        at - (line_start == std::string::npos ? 0 : line_start + 1));
  // head is "L: C: " (no file name: we never pass one).
  const auto read_int = [&head](int& out) {
    while (!head.empty() && (head.front() == ' ' || head.front() == ':')) head.remove_prefix(1);
    const auto [ptr, ec] = std::from_chars(head.data(), head.data() + head.size(), out);
    if (ec == std::errc()) head.remove_prefix(static_cast<std::size_t>(ptr - head.data()));
  };
  read_int(f.line);
  read_int(f.column);
  return f;
}

// One step of a JSON path: a key of an object or an index into an array.
struct PathStep {
  bool is_index = false;
  std::string key;
  std::size_t index = 0;
};

// The path of keys enclosing byte `offset` of `json` ("symbols[1].qty"):
// a tolerant scan that only tracks brackets, strings, colons and commas, so it
// works on the prefix of malformed text too.
std::vector<PathStep> path_at(std::string_view json, std::size_t offset) {
  struct Frame {
    bool is_array = false;
    std::string key;  // object: the key being parsed
    std::size_t index = 0;
  };
  std::vector<Frame> frames;
  std::string last_string;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < std::min(offset, json.size()); ++i) {
    const char c = json[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"' || c == '\'')
        in_string = false;
      else
        last_string += c;
      continue;
    }
    switch (c) {
      case '"':
      case '\'':
        in_string = true;
        last_string.clear();
        break;
      case ':':
        if (!frames.empty() && !frames.back().is_array) frames.back().key = last_string;
        break;
      case ',':
        if (!frames.empty()) {
          if (frames.back().is_array)
            ++frames.back().index;
          else
            frames.back().key.clear();
        }
        break;
      case '{':
        frames.push_back(Frame{});
        break;
      case '[':
        frames.push_back(Frame{true, {}, 0});
        break;
      case '}':
      case ']':
        if (!frames.empty()) frames.pop_back();
        break;
      default:
        break;
    }
  }
  std::vector<PathStep> path;
  for (const Frame& f : frames) {
    if (f.is_array)
      path.push_back(PathStep{true, {}, f.index});
    else if (!f.key.empty())
      path.push_back(PathStep{false, f.key, 0});
  }
  return path;
}

std::string path_string(const std::vector<PathStep>& path) {
  std::string out;
  for (const PathStep& step : path) {
    if (step.is_index) {
      // Appended piecewise: g++ 12 -O3 reports a false -Wrestrict on "[" + s + "]".
      out += '[';
      out += std::to_string(step.index);
      out += ']';
    } else {
      if (!out.empty()) out += ".";
      out += step.key;
    }
  }
  return out;
}

// The table whose keys are being parsed at the end of `path` (the last step
// is the key itself), or nullptr if the path leaves the tables of the schema.
const reflection::Object* table_at(const reflection::Schema& schema, const reflection::Object& root,
                                   const std::vector<PathStep>& path) {
  const reflection::Object* current = &root;
  if (path.empty()) return nullptr;
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    if (path[i].is_index) return nullptr;  // an index is consumed with its vector below
    const reflection::Field* field = current->fields()->LookupByKey(path[i].key.c_str());
    if (field == nullptr) return nullptr;
    const reflection::Type& type = *field->type();
    if (type.base_type() == reflection::Obj) {
      current = schema.objects()->Get(static_cast<flatbuffers::uoffset_t>(type.index()));
    } else if (type.base_type() == reflection::Vector && type.element() == reflection::Obj) {
      if (i + 2 >= path.size() || !path[i + 1].is_index) return nullptr;
      current = schema.objects()->Get(static_cast<flatbuffers::uoffset_t>(type.index()));
      ++i;
    } else {
      return nullptr;
    }
  }
  return path.back().is_index ? nullptr : current;
}

std::string field_list(const reflection::Object& object) {
  std::vector<const reflection::Field*> fields(object.fields()->begin(), object.fields()->end());
  std::sort(
      fields.begin(), fields.end(),
      [](const reflection::Field* a, const reflection::Field* b) { return a->id() < b->id(); });
  std::string out;
  for (const reflection::Field* f : fields) {
    if (f->deprecated()) continue;
    if (!out.empty()) out += ", ";
    out += view(f->name());
  }
  return out;
}

// The parser checks a scalar's text only when it finishes the enclosing
// table, so for "invalid number: "X"" it stops at the table's end. Find the
// value itself: the last X before `offset` that stands as a value (after a
// colon, optionally quoted). Returns `offset` if there is none.
std::size_t value_offset(std::string_view text, std::size_t offset, std::string_view reason) {
  constexpr std::string_view kPrefix = "invalid number: \"";
  if (reason.rfind(kPrefix, 0) != 0) return offset;
  const auto close = reason.find('"', kPrefix.size());
  if (close == std::string_view::npos) return offset;
  const std::string_view value = reason.substr(kPrefix.size(), close - kPrefix.size());
  if (value.empty()) return offset;
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  std::size_t end = std::min(offset, text.size());
  while (end > 0) {
    const auto at = text.rfind(value, end - 1);
    if (at == std::string_view::npos) break;
    std::size_t before = at;
    if (before > 0 && (text[before - 1] == '"' || text[before - 1] == '\'')) --before;
    while (before > 0 && is_space(text[before - 1])) --before;
    std::size_t after = at + value.size();
    if (after < text.size() && (text[after] == '"' || text[after] == '\'')) ++after;
    while (after < text.size() && is_space(text[after])) ++after;
    const bool ends =
        after == text.size() || text[after] == ',' || text[after] == '}' || text[after] == ']';
    if (before > 0 && text[before - 1] == ':' && ends) return at;
    end = at;
  }
  return offset;
}

std::size_t offset_of(std::string_view text, int line, int column) {
  std::size_t pos = 0;
  for (int l = 1; l < line; ++l) {
    const auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return text.size();
    pos = nl + 1;
  }
  return std::min(text.size(), pos + static_cast<std::size_t>(std::max(column, 0)));
}

}  // namespace

// ---------------------------------------------------------------- JsonCodec

// ---------------------------------------------------------------- compiled writer
//
// append_json()'s fast path: the same text GenerateText prints with this file's options,
// without the blanks outside strings, written straight into the caller's string. GenerateText
// formats every number through a std::stringstream (a locale look-up per scalar); here each
// root type is compiled once per codec into a Plan, from the Parser's own StructDefs (so field
// order, defaults and enum names are GenerateText's), and a message is a walk over the plan:
//   * per field: its key quoted once with its comma (,"bid_px":), its vtable offset, its
//     default already parsed into the field's own type, its enum's names quoted once and
//     indexed by value: nothing is looked up, parsed or compared by name per message;
//   * integers through std::to_chars; doubles through detail::write_fixed, which gives
//     to_chars' fixed notation with GenerateText's precision (12 for double, 6 for float)
//     and trailing-zero trim from 128-bit integer arithmetic (json_number.hpp);
//   * strings of printable ASCII without quote or backslash (checked 16 bytes at a time) are
//     copied in one piece; any other string goes through FlatBuffers' EscapeString, the
//     function GenerateText uses, so escapes and the UTF-8 check are its own;
//   * output through a cursor into the caller's string, grown when a value may not fit:
//     no per-character capacity check, no allocation when the string has room.
// The plan owns copies of everything it needs (the Parser is rebuilt after a failed parse).
// Schemas with what it does not handle (unions, fixed-size arrays, optional scalars,
// bit_flags enums, flexbuffer and nested_flatbuffer fields) take the GenerateText path
// instead: supported() says which, once per codec. tests/schema_test.cpp checks that both
// paths give the same text, on every schema's random messages.
namespace {
namespace compiled {

bool type_supported(const flatbuffers::Type& t, std::vector<const flatbuffers::StructDef*>& seen);

bool struct_supported(const flatbuffers::StructDef& sd,
                      std::vector<const flatbuffers::StructDef*>& seen) {
  if (std::find(seen.begin(), seen.end(), &sd) != seen.end()) return true;
  seen.push_back(&sd);
  for (const flatbuffers::FieldDef* fd : sd.fields.vec) {
    if (fd->flexbuffer || fd->nested_flatbuffer != nullptr || fd->IsScalarOptional()) return false;
    if (!type_supported(fd->value.type, seen)) return false;
  }
  return true;
}

bool type_supported(const flatbuffers::Type& t, std::vector<const flatbuffers::StructDef*>& seen) {
  switch (t.base_type) {
    case flatbuffers::BASE_TYPE_UNION:
    case flatbuffers::BASE_TYPE_UTYPE:
    case flatbuffers::BASE_TYPE_ARRAY:
      return false;
    case flatbuffers::BASE_TYPE_STRUCT:
      return struct_supported(*t.struct_def, seen);
    case flatbuffers::BASE_TYPE_VECTOR:
      return type_supported(t.VectorType(), seen);
    default:
      return t.enum_def == nullptr || t.enum_def->attributes.Lookup("bit_flags") == nullptr;
  }
}

// An enum's names, quoted, by value (EnumDef::ReverseLookup, answered by an index).
struct EnumNames {
  static constexpr std::int64_t kMaxDense = 4096;
  std::int64_t min = 0;
  std::vector<std::string> dense;                            // by value - min; "" for none
  std::vector<std::pair<std::int64_t, std::string>> sparse;  // sorted: a wide range of values

  [[nodiscard]] const std::string* find(std::int64_t v) const noexcept {
    if (!dense.empty()) {
      if (v < min || v - min >= static_cast<std::int64_t>(dense.size())) return nullptr;
      const std::string& n = dense[static_cast<std::size_t>(v - min)];
      return n.empty() ? nullptr : &n;
    }
    const auto it = std::lower_bound(sparse.begin(), sparse.end(), v,
                                     [](const auto& e, std::int64_t x) { return e.first < x; });
    return it != sparse.end() && it->first == v ? &it->second : nullptr;
  }
};

struct Plan;

// How one value is written: a field's, or a vector's element.
struct Value {
  flatbuffers::BaseType base = flatbuffers::BASE_TYPE_NONE;
  int decimals = 0;                  // float 6, double 12 (GenerateText's precision)
  const EnumNames* names = nullptr;  // an enum's (not bool)
  const Plan* plan = nullptr;        // struct or table
  std::size_t struct_size = 0;       // a struct's bytes (vectors of structs)
  const Value* element = nullptr;    // a vector's
};

struct Field {
  std::string key;                     // ,"name":  (the comma left out before the first)
  flatbuffers::voffset_t offset = 0;   // vtable offset in a table, byte offset in a struct
  bool print_absent = false;           // a scalar, not deprecated: its default is printed
  std::array<unsigned char, 8> def{};  // the default, as the field's own type
  Value value;
};

struct Plan {
  bool fixed = false;  // a struct: fields inline at their offsets
  std::vector<Field> fields;
};

// The default of a field, parsed once. Almost every default is "0".
template <typename T>
T default_of(const flatbuffers::FieldDef& fd) {
  const std::string& c = fd.value.constant;
  if (c == "0" || c == "0.0") return T{};
  T v{};
  (void)flatbuffers::StringToNumber(c.c_str(), &v);
  return v;
}

// Plans for a root type and everything it reaches; addresses are stable (deques).
class Program {
 public:
  explicit Program(const flatbuffers::StructDef& root) : root_(compile(root)) {}
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  [[nodiscard]] const Plan& root() const noexcept { return *root_; }

 private:
  const Plan* compile(const flatbuffers::StructDef& sd) {
    if (const auto it = plans_by_def_.find(&sd); it != plans_by_def_.end()) return it->second;
    Plan& plan = plans_.emplace_back();
    plans_by_def_.emplace(&sd, &plan);  // before the fields: a table may contain itself
    plan.fixed = sd.fixed;
    for (const flatbuffers::FieldDef* fd : sd.fields.vec) {
      Field f;
      f.key = ",\"" + fd->name + "\":";
      f.offset = fd->value.offset;
      const flatbuffers::Type& type = fd->value.type;
      f.print_absent = flatbuffers::IsScalar(type.base_type) && !fd->deprecated;
      switch (type.base_type) {
#define SHMBUS_DEFAULT(ENUM, IDLTYPE, CTYPE, ...) \
  case flatbuffers::BASE_TYPE_##ENUM: {           \
    const CTYPE v = default_of<CTYPE>(*fd);       \
    static_assert(sizeof v <= sizeof f.def);      \
    std::memcpy(f.def.data(), &v, sizeof v);      \
    break;                                        \
  }
        FLATBUFFERS_GEN_TYPES_SCALAR(SHMBUS_DEFAULT)
#undef SHMBUS_DEFAULT
        default:
          break;
      }
      f.value = value_of(type);
      plan.fields.push_back(std::move(f));
    }
    return &plan;
  }

  Value value_of(const flatbuffers::Type& type) {
    Value v;
    v.base = type.base_type;
    if (type.base_type == flatbuffers::BASE_TYPE_FLOAT) v.decimals = 6;
    if (type.base_type == flatbuffers::BASE_TYPE_DOUBLE) v.decimals = 12;
    if (flatbuffers::IsScalar(type.base_type) && type.base_type != flatbuffers::BASE_TYPE_BOOL &&
        type.enum_def != nullptr)
      v.names = names_of(*type.enum_def);
    if (type.base_type == flatbuffers::BASE_TYPE_STRUCT) {
      v.plan = compile(*type.struct_def);
      v.struct_size = type.struct_def->bytesize;
    }
    if (type.base_type == flatbuffers::BASE_TYPE_VECTOR)
      v.element = &values_.emplace_back(value_of(type.VectorType()));
    return v;
  }

  const EnumNames* names_of(const flatbuffers::EnumDef& ed) {
    if (const auto it = names_by_def_.find(&ed); it != names_by_def_.end()) return it->second;
    EnumNames& n = names_.emplace_back();
    names_by_def_.emplace(&ed, &n);
    // What ReverseLookup finds for each value: the first value of that number.
    for (const flatbuffers::EnumVal* ev : ed.Vals()) {
      const std::int64_t value = ev->GetAsInt64();
      if (std::none_of(n.sparse.begin(), n.sparse.end(),
                       [value](const auto& e) { return e.first == value; }))
        n.sparse.emplace_back(value, "\"" + ev->name + "\"");
    }
    std::sort(n.sparse.begin(), n.sparse.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (!n.sparse.empty()) {
      const std::int64_t lo = n.sparse.front().first;
      const std::int64_t hi = n.sparse.back().first;
      // Spans computed in unsigned: hi - lo overflows for values at both ends of int64.
      const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
      if (span < static_cast<std::uint64_t>(EnumNames::kMaxDense)) {
        n.min = lo;
        n.dense.resize(span + 1);
        for (auto& [value, name] : n.sparse)
          n.dense[static_cast<std::size_t>(value - lo)] = std::move(name);
        n.sparse.clear();
      }
    }
    return &n;
  }

  std::deque<Plan> plans_;
  std::deque<Value> values_;
  std::deque<EnumNames> names_;
  std::map<const flatbuffers::StructDef*, const Plan*> plans_by_def_;
  std::map<const flatbuffers::EnumDef*, const EnumNames*> names_by_def_;
  const Plan* root_;
};

// A write cursor into a scratch string kept at its largest size (the codec's own: one per
// thread), so that room is made by a bounds check, not by resizing (which zero-fills) or by a
// capacity check per character; finish() appends what was written to the caller's string in
// one copy.
class Out {
 public:
  explicit Out(std::string& scratch) : s_(scratch) {
    if (s_.size() < 1024) s_.resize(1024);
    p_ = s_.data();
    end_ = s_.data() + s_.size();
  }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;

  void ensure(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) grow(n);
  }
  void put(char c) {
    ensure(1);
    *p_++ = c;
  }
  void put(std::string_view v) {
    ensure(v.size());
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
  }
  // Raw access after ensure(): the caller writes and moves the cursor.
  char*& cursor() noexcept { return p_; }
  // The text so far as a string (for writers that append to one); resume() after them.
  std::string& sync() {
    s_.resize(static_cast<std::size_t>(p_ - s_.data()));
    return s_;
  }
  void resume() {
    const std::size_t at = s_.size();
    s_.resize(std::max(2 * at, at + 1024));
    p_ = s_.data() + at;
    end_ = s_.data() + s_.size();
  }
  void finish(std::string& to) const {
    to.append(s_.data(), static_cast<std::size_t>(p_ - s_.data()));
  }

 private:
  void grow(std::size_t n) {
    const std::size_t at = static_cast<std::size_t>(p_ - s_.data());
    s_.resize(std::max(2 * s_.size(), at + n + 1024));
    p_ = s_.data() + at;
    end_ = s_.data() + s_.size();
  }

  std::string& s_;
  char* p_;
  char* end_;
};

// True if every byte is printable ASCII other than '"' and '\\' (EscapeString copies those
// as they are). 16 bytes at a time with SSE2 (x86-64's baseline), else 8 with word tricks;
// both tests are exact (no byte is missed).
bool plain_ascii(const char* s, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    // Signed: bytes >= 0x80 are negative, so "< 0x20" also catches them.
    const __m128i bad =
        _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    if (_mm_movemask_epi8(bad) != 0) return false;
  }
#endif
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  const auto has_zero = [](std::uint64_t x) { return (x - kOnes) & ~x & kHighs; };
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s + i, 8);
    const std::uint64_t bad = (w & kHighs)                          // >= 0x80
                              | ((w - kOnes * 0x20) & ~w & kHighs)  // < 0x20
                              | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\')) |
                              has_zero(w ^ (kOnes * 0x7f));
    if (bad != 0) return false;
  }
  for (; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

bool put_string(const flatbuffers::String* s, Out& out) {
  const char* p = s->c_str();
  const std::size_t n = s->size();
  if (plain_ascii(p, n)) {
    out.ensure(n + 2);
    char*& c = out.cursor();
    *c++ = '"';
    std::memcpy(c, p, n);
    c += n;
    *c++ = '"';
    return true;
  }
  const bool ok = flatbuffers::EscapeString(p, n, &out.sync(), false, false);
  out.resume();
  return ok;
}

void put_double(double v, int decimals, Out& out) {
  if (std::isnan(v)) {
    out.put("\"NaN\"");
    return;
  }
  if (std::isinf(v)) {
    out.put(v < 0 ? "\"-Infinity\"" : "\"Infinity\"");
    return;
  }
  char buf[detail::kFixedMaxChars];  // not ensure(400): that would grow the string for nothing
  out.put(
      std::string_view(buf, static_cast<std::size_t>(detail::write_fixed(v, decimals, buf) - buf)));
}

template <typename T>
void put_scalar(T v, const Value& value, Out& out) {
  if constexpr (std::is_same_v<T, bool>) {
    out.put(v ? std::string_view("true") : std::string_view("false"));
    return;
  } else {
    if (value.base == flatbuffers::BASE_TYPE_BOOL) {
      out.put(v != 0 ? std::string_view("true") : std::string_view("false"));
      return;
    }
    if (value.names != nullptr) {
      if (const std::string* name = value.names->find(static_cast<std::int64_t>(v))) {
        out.put(*name);
        return;
      }
    }
    if constexpr (std::is_floating_point_v<T>) {
      put_double(static_cast<double>(v), value.decimals, out);
    } else {
      out.ensure(24);
      char*& c = out.cursor();
      c = std::to_chars(c, c + 24, v).ptr;
    }
  }
}

bool put_table(const Plan& plan, const std::uint8_t* base, Out& out);

// The value of a pointer type (string, struct/table, vector) at `p`.
bool put_pointer(const std::uint8_t* p, const Value& value, Out& out) {
  switch (value.base) {
    case flatbuffers::BASE_TYPE_STRING:
      return put_string(reinterpret_cast<const flatbuffers::String*>(p), out);
    case flatbuffers::BASE_TYPE_STRUCT:
      return put_table(*value.plan, p, out);
    case flatbuffers::BASE_TYPE_VECTOR: {
      const Value& et = *value.element;
      const auto n = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(p);
      const std::uint8_t* data = p + sizeof(flatbuffers::uoffset_t);
      out.put('[');
      bool ok = true;
      switch (et.base) {
#define SHMBUS_SCALAR_VECTOR(ENUM, IDLTYPE, CTYPE, ...)                                     \
  case flatbuffers::BASE_TYPE_##ENUM:                                                       \
    for (flatbuffers::uoffset_t i = 0; i < n; ++i) {                                        \
      if (i != 0) out.put(',');                                                             \
      put_scalar<CTYPE>(flatbuffers::ReadScalar<CTYPE>(data + i * sizeof(CTYPE)), et, out); \
    }                                                                                       \
    break;
        FLATBUFFERS_GEN_TYPES_SCALAR(SHMBUS_SCALAR_VECTOR)
#undef SHMBUS_SCALAR_VECTOR
        case flatbuffers::BASE_TYPE_STRUCT:
          if (et.plan->fixed) {
            // The length of a vector of structs counts structs, not bytes.
            for (flatbuffers::uoffset_t i = 0; i < n && ok; ++i) {
              if (i != 0) out.put(',');
              ok = put_table(*et.plan, data + et.struct_size * i, out);
            }
            break;
          }
          [[fallthrough]];
        default:
          for (flatbuffers::uoffset_t i = 0; i < n && ok; ++i) {
            if (i != 0) out.put(',');
            const std::uint8_t* elem = data + i * sizeof(flatbuffers::uoffset_t);
            ok = put_pointer(elem + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(elem), et, out);
          }
      }
      out.put(']');
      return ok;
    }
    default:
      return false;  // excluded by type_supported()
  }
}

// A table, or a struct (plan.fixed: `base` points at the struct's bytes).
bool put_table(const Plan& plan, const std::uint8_t* base, Out& out) {
  out.put('{');
  bool first = true;
  const auto* table = reinterpret_cast<const flatbuffers::Table*>(base);
  for (const Field& f : plan.fields) {
    const std::uint8_t* at = nullptr;  // the field's bytes; nullptr: absent, the default
    if (plan.fixed) {
      at = base + f.offset;
    } else if (const flatbuffers::voffset_t o = table->GetOptionalFieldOffset(f.offset); o != 0) {
      at = base + o;
    } else if (!f.print_absent) {
      continue;
    }
    // Every scalar is printed (defaults too), as output_default_scalars_in_json asks.
    out.put(std::string_view(f.key).substr(first ? 1 : 0));
    first = false;
    switch (f.value.base) {
#define SHMBUS_SCALAR_FIELD(ENUM, IDLTYPE, CTYPE, ...) \
  case flatbuffers::BASE_TYPE_##ENUM: {                \
    CTYPE v;                                           \
    if (at != nullptr)                                 \
      v = flatbuffers::ReadScalar<CTYPE>(at);          \
    else                                               \
      std::memcpy(&v, f.def.data(), sizeof v);         \
    put_scalar<CTYPE>(v, f.value, out);                \
    break;                                             \
  }
      FLATBUFFERS_GEN_TYPES_SCALAR(SHMBUS_SCALAR_FIELD)
#undef SHMBUS_SCALAR_FIELD
      default: {
        // Structs are inline (in a table and in a struct alike); the rest is an offset.
        const bool inline_struct =
            f.value.base == flatbuffers::BASE_TYPE_STRUCT && f.value.plan->fixed;
        const std::uint8_t* p =
            inline_struct ? at : at + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(at);
        if (!put_pointer(p, f.value, out)) return false;
      }
    }
  }
  out.put('}');
  return true;
}

}  // namespace compiled
}  // namespace

struct JsonCodec::Impl {
  Verifier verifier;
  std::unique_ptr<flatbuffers::Parser> parser;
  std::unique_ptr<compiled::Program> program;  // append_json()'s fast path, when supported
  mutable std::string scratch;                 // its output, kept at its largest size

  explicit Impl(Verifier v) : verifier(std::move(v)) {}
  void compile() {
    parser = fresh_parser();
    std::vector<const flatbuffers::StructDef*> seen;
    if (compiled::struct_supported(*parser->root_struct_def_, seen))
      program = std::make_unique<compiled::Program>(*parser->root_struct_def_);
  }
  [[nodiscard]] const std::string& type_name() const noexcept { return verifier.type_name(); }
  [[nodiscard]] std::unique_ptr<flatbuffers::Parser> fresh_parser() const {
    return make_parser(detail::VerifierAccess::bfbs(verifier), type_name(),
                       verifier.file_identifier());
  }
};

JsonCodec::JsonCodec(std::span<const std::uint8_t> bfbs, std::string_view type_name)
    : impl_(std::make_unique<Impl>(Verifier(bfbs, type_name))) {
  impl_->compile();
}

JsonCodec::JsonCodec(const TypeInfo& type) : impl_(std::make_unique<Impl>(Verifier(type))) {
  impl_->compile();
}

JsonCodec::JsonCodec(JsonCodec&&) noexcept = default;
JsonCodec& JsonCodec::operator=(JsonCodec&&) noexcept = default;
JsonCodec::~JsonCodec() = default;

const std::string& JsonCodec::type_name() const noexcept {
  assert(impl_ && "use of a moved-from JsonCodec");
  return impl_->type_name();
}

bool JsonCodec::verify(std::span<const std::byte> message) const {
  assert(impl_ && "use of a moved-from JsonCodec");
  return impl_->verifier.verify(message);
}

const Verifier& JsonCodec::verifier() const noexcept {
  assert(impl_ && "use of a moved-from JsonCodec");
  return impl_->verifier;
}

namespace {

// The checks both writers make first: nothing of a message is read before it verified.
// Returns the (8-aligned) bytes to read; `copy` holds them when the message was not aligned.
const std::uint8_t* checked_bytes(const Verifier& verifier, std::span<const std::byte> message,
                                  std::vector<std::uint8_t>& copy) {
  if (const std::string why = verifier.check(message); !why.empty())
    throw Error(Errc::InvalidMessage,
                "not a valid " + verifier.type_name() + " message: " + why + ".");
  // The readers read scalars in place: give them an aligned buffer.
  const auto* data = reinterpret_cast<const std::uint8_t*>(message.data());
  if (reinterpret_cast<std::uintptr_t>(data) % 8 != 0) {
    copy.assign(data, data + message.size());
    data = copy.data();
  }
  return data;
}

[[noreturn]] void not_utf8(const std::string& type_name) {
  throw Error(Errc::InvalidMessage, "cannot write the " + type_name +
                                        " message as JSON: one of its strings is not valid "
                                        "UTF-8. Fix the producer to send UTF-8 text.");
}

}  // namespace

std::string JsonCodec::to_json(std::span<const std::byte> message) const {
  assert(impl_ && "use of a moved-from JsonCodec");
  const Impl& d = *impl_;
  std::vector<std::uint8_t> copy;
  const std::uint8_t* data = checked_bytes(d.verifier, message, copy);
  std::string text;
  // 2.0.8: true on success, false when a string is not valid UTF-8.
  if (!flatbuffers::GenerateText(*d.parser, data, &text)) not_utf8(d.type_name());
  std::string out;
  strict_numbers(text, out, false);
  return out;
}

void JsonCodec::append_json(std::span<const std::byte> message, std::string& out) const {
  assert(impl_ && "use of a moved-from JsonCodec");
  const Impl& d = *impl_;
  std::vector<std::uint8_t> copy;
  const std::uint8_t* data = checked_bytes(d.verifier, message, copy);
  if (d.program) {
    compiled::Out o(d.scratch);
    if (!compiled::put_table(d.program->root(),
                             data + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(data), o))
      not_utf8(d.type_name());
    o.finish(out);
    return;
  }
  std::string text;
  if (!flatbuffers::GenerateText(*d.parser, data, &text)) not_utf8(d.type_name());
  strict_numbers(text, out, true);
}

std::vector<std::byte> JsonCodec::from_json(std::string_view json) const {
  assert(impl_ && "use of a moved-from JsonCodec");
  Impl& d = *impl_;
  if (const auto nul = json.find('\0'); nul != std::string_view::npos)
    throw Error(Errc::InvalidJson, "invalid JSON for " + d.type_name() + ": a NUL byte at offset " +
                                       std::to_string(nul) + "; JSON text cannot contain one.");
  if (json.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw Error(Errc::InvalidJson, "invalid JSON for " + d.type_name() +
                                       ": the text is empty; expected a JSON object.");
  const std::string text(json);  // the parser wants a terminated string
  flatbuffers::Parser& parser = *d.parser;
  parser.error_.clear();
  parser.builder_.Clear();
  if (!parser.ParseJson(text.c_str())) {
    const ParseFailure f = parse_failure(parser.error_);
    d.parser = d.fresh_parser();

    std::string msg = "invalid JSON for " + d.type_name();
    std::vector<PathStep> path;
    if (f.line > 0) {
      const std::size_t stop = offset_of(text, f.line, f.column);
      const std::size_t at = value_offset(text, stop, f.reason);
      int line = f.line;
      int column = f.column;
      if (at != stop) {  // point at the value, not at the end of its table
        const std::string_view before(text.data(), at);
        const auto newline = before.rfind('\n');
        line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
        column = static_cast<int>(at - (newline == std::string_view::npos ? 0 : newline + 1));
      }
      msg += " at " + std::to_string(line) + ":" + std::to_string(column);
      path = path_at(text, at);
      if (!path.empty()) msg += ", field \"" + path_string(path) + "\"";
    }
    msg += ": " + f.reason;
    if (f.reason.rfind("unknown field", 0) == 0) {
      if (const reflection::Object* table =
              table_at(detail::VerifierAccess::schema(d.verifier),
                       detail::VerifierAccess::root(d.verifier), path))
        msg += "; " + std::string(view(table->name())) + " has the fields " + field_list(*table);
    }
    throw Error(Errc::InvalidJson, msg + ".");
  }
  const auto* data = reinterpret_cast<const std::byte*>(parser.builder_.GetBufferPointer());
  return std::vector<std::byte>(data, data + parser.builder_.GetSize());
}

}  // namespace shmbus
