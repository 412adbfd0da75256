// bus-inspect schema BUS TOPIC: the topic's message type and its fields,
// read from the binary schema stored in the topic's own segment (so it is
// the schema the producer built with, whatever this binary was built with).
//
// The root table comes first, then every table, struct, enum and union it
// reaches, each once, with the doc comments of the .fbs.
#include <flatbuffers/reflection.h>
#include <flatbuffers/reflection_generated.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include <shmbus/error.hpp>

#include "cli.hpp"

namespace inspect {

namespace {

std::string str(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : s->str();
}

std::string doc(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* d) {
  std::string out;
  if (d == nullptr) return out;
  for (const auto* line : *d) {
    std::string l = line->str();
    const auto b = l.find_first_not_of(' ');
    l = b == std::string::npos ? std::string() : l.substr(b);
    if (l.empty()) continue;
    out += (out.empty() ? "" : " ") + l;
  }
  return out;
}

const char* scalar_name(reflection::BaseType t) {
  switch (t) {
    case reflection::None:
      return "none";
    case reflection::UType:
      return "utype";
    case reflection::Bool:
      return "bool";
    case reflection::Byte:
      return "byte";
    case reflection::UByte:
      return "ubyte";
    case reflection::Short:
      return "short";
    case reflection::UShort:
      return "ushort";
    case reflection::Int:
      return "int";
    case reflection::UInt:
      return "uint";
    case reflection::Long:
      return "long";
    case reflection::ULong:
      return "ulong";
    case reflection::Float:
      return "float";
    case reflection::Double:
      return "double";
    case reflection::String:
      return "string";
    default:
      return "?";
  }
}

bool is_integer(reflection::BaseType t) {
  return t >= reflection::UType && t <= reflection::ULong;
}

class Describer {
 public:
  explicit Describer(const reflection::Schema& s) : s_(s) {}

  // The name of a field's type; records the named types it refers to.
  std::string type_name(const reflection::Type& t) { return name_of(t.base_type(), t.index(), t); }

  std::string default_text(const reflection::Field& f) {
    const reflection::Type& t = *f.type();
    const auto bt = t.base_type();
    const bool scalar = bt == reflection::Bool || is_integer(bt) || bt == reflection::Float ||
                        bt == reflection::Double;
    if (!scalar) return "";
    if (f.optional()) return "null";  // an optional scalar: absent unless set
    if (bt == reflection::Bool) return f.default_integer() != 0 ? "true" : "false";
    if (is_integer(bt)) {
      if (t.index() >= 0) {
        const reflection::Enum* e = s_.enums()->Get(static_cast<flatbuffers::uoffset_t>(t.index()));
        for (const auto* v : *e->values())
          if (v->value() == f.default_integer()) return str(v->name());
      }
      return std::to_string(f.default_integer());
    }
    if (bt == reflection::Float || bt == reflection::Double) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", f.default_real());
      return buf;
    }
    return "";
  }

  std::vector<const reflection::Object*> pending_objects;
  std::vector<const reflection::Enum*> pending_enums;

 private:
  std::string name_of(reflection::BaseType bt, std::int32_t index, const reflection::Type& t) {
    if (bt == reflection::Vector || bt == reflection::Array) {
      std::string inner = name_of(t.element(), index, t);
      return bt == reflection::Vector ? "[" + inner + "]"
                                      : "[" + inner + ":" + std::to_string(t.fixed_length()) + "]";
    }
    if (bt == reflection::Obj) {
      const reflection::Object* o = s_.objects()->Get(static_cast<flatbuffers::uoffset_t>(index));
      pending_objects.push_back(o);
      return str(o->name());
    }
    if ((bt == reflection::Union || bt == reflection::UType || is_integer(bt)) && index >= 0) {
      const reflection::Enum* e = s_.enums()->Get(static_cast<flatbuffers::uoffset_t>(index));
      pending_enums.push_back(e);
      return str(e->name()) + (bt == reflection::UType ? " (type tag)" : "");
    }
    return scalar_name(bt);
  }

  const reflection::Schema& s_;
};

std::vector<const reflection::Field*> by_id(const reflection::Object& o) {
  std::vector<const reflection::Field*> fields(o.fields()->begin(), o.fields()->end());
  std::sort(fields.begin(), fields.end(),
            [&](const reflection::Field* a, const reflection::Field* b) {
              return o.is_struct() ? a->offset() < b->offset() : a->id() < b->id();
            });
  return fields;
}

std::string notes(const reflection::Field& f) {
  std::string n;
  if (f.required()) n += "required";
  if (f.deprecated()) n += std::string(n.empty() ? "" : ", ") + "deprecated";
  if (f.key()) n += std::string(n.empty() ? "" : ", ") + "key";
  return n;
}

}  // namespace

int run_schema(const SchemaOptions& o) {
  const shmbus::Bus bus = shmbus::Bus::open(o.bus, shmbus::Access::ReadOnly);
  const shmbus::Topic topic = bus.open_topic(o.topic);
  const shmbus::TopicSnapshot snap = shmbus::snapshot(topic);

  Json j;
  j["bus"] = o.bus;
  j["topic"] = o.topic;
  j["type"] = topic.type_name();
  j["policy"] = std::string(shmbus::to_string(topic.policy()));
  j["slot_size"] = topic.slot_size();
  j["slot_count"] = topic.slot_count();
  j["max_payload"] = topic.max_payload();
  const std::string where = "topic " + o.topic + " on bus " + o.bus;
  const std::string geometry = std::string(shmbus::to_string(topic.policy())) + ", " +
                               std::to_string(topic.slot_count()) + " slots of " +
                               std::to_string(topic.slot_size()) + " bytes (messages up to " +
                               std::to_string(topic.max_payload()) + " bytes)";

  if (topic.type_name().empty()) {
    if (o.json) {
      j["raw"] = true;
      j["fields"] = Json::array();
      std::cout << j.dump() << "\n";
    } else {
      std::cout << where << ": raw bytes (untyped: no schema; tail shows payloads as base64)\n"
                << geometry << "\n";
    }
    return 0;
  }

  const auto bfbs = topic.schema();
  flatbuffers::Verifier verifier(bfbs.data(), bfbs.size());
  if (bfbs.empty() || !reflection::VerifySchemaBuffer(verifier)) {
    throw Failure(where +
                  ": the binary schema stored in its segment is damaged (it fails the verifier)");
  }
  const reflection::Schema& schema = *reflection::GetSchema(bfbs.data());
  const reflection::Object* root = schema.objects()->LookupByKey(topic.type_name().c_str());
  if (root == nullptr) {
    throw Failure(where + ": its binary schema has no table named " + topic.type_name());
  }
  char hash[24];
  std::snprintf(hash, sizeof hash, "0x%016llx",
                static_cast<unsigned long long>(topic.schema_hash()));
  const std::string ident = schema.root_table() == root ? str(schema.file_ident()) : std::string();
  j["file_identifier"] = ident;
  j["schema_hash"] = hash;
  j["raw"] = false;

  Describer d(schema);
  Json types = Json::array();
  std::set<const void*> done;
  std::vector<std::string> text;
  bool first = true;

  d.pending_objects.push_back(root);
  while (!d.pending_objects.empty() || !d.pending_enums.empty()) {
    if (!d.pending_objects.empty()) {
      const reflection::Object* obj = d.pending_objects.front();
      d.pending_objects.erase(d.pending_objects.begin());
      if (!done.insert(obj).second) continue;
      Table table({"FIELD", ">ID", "TYPE", "DEFAULT", "NOTES", "DESCRIPTION"});
      Json fields = Json::array();
      for (const reflection::Field* f : by_id(*obj)) {
        const std::string type = d.type_name(*f->type());
        const std::string def = d.default_text(*f);
        Json jf;
        jf["name"] = str(f->name());
        jf["id"] = f->id();
        jf["type"] = type;
        jf["default"] = def.empty() ? Json(nullptr) : Json(def);
        jf["required"] = f->required();
        jf["deprecated"] = f->deprecated();
        jf["doc"] = doc(f->documentation());
        fields.push_back(std::move(jf));
        table.add({str(f->name()), obj->is_struct() ? "-" : std::to_string(f->id()), type, def,
                   notes(*f), doc(f->documentation())});
      }
      if (first) {
        j["doc"] = doc(obj->documentation());
        j["fields"] = std::move(fields);
        text.push_back(where + ": " + topic.type_name() +
                       (ident.empty() ? "" : " (file identifier \"" + ident + "\")") +
                       ", schema hash " + hash);
        if (const std::string dd = doc(obj->documentation()); !dd.empty())
          text.push_back("  " + dd);
        text.push_back(geometry + "; " + std::to_string(snap.head) + " published so far");
      } else {
        Json jt;
        jt["kind"] = obj->is_struct() ? "struct" : "table";
        jt["name"] = str(obj->name());
        jt["doc"] = doc(obj->documentation());
        jt["fields"] = std::move(fields);
        types.push_back(std::move(jt));
        text.emplace_back();
        text.push_back(std::string(obj->is_struct() ? "struct " : "table ") + str(obj->name()) +
                       (doc(obj->documentation()).empty() ? "" : ": " + doc(obj->documentation())));
      }
      text.emplace_back();
      for (std::string& l : table.lines(first ? 0 : 2)) text.push_back(std::move(l));
      first = false;
      continue;
    }
    const reflection::Enum* e = d.pending_enums.front();
    d.pending_enums.erase(d.pending_enums.begin());
    if (!done.insert(e).second) continue;
    Json jt;
    jt["kind"] = e->is_union() ? "union" : "enum";
    jt["name"] = str(e->name());
    jt["underlying"] = scalar_name(e->underlying_type()->base_type());
    jt["doc"] = doc(e->documentation());
    Json values = Json::array();
    Table table({"VALUE", ">NUMBER", "DESCRIPTION"});
    for (const auto* v : *e->values()) {
      Json jv;
      jv["name"] = str(v->name());
      jv["value"] = v->value();
      jv["doc"] = doc(v->documentation());
      values.push_back(std::move(jv));
      table.add({str(v->name()), std::to_string(v->value()), doc(v->documentation())});
      if (e->is_union() && v->union_type() != nullptr) (void)d.type_name(*v->union_type());
    }
    jt["values"] = std::move(values);
    types.push_back(std::move(jt));
    text.emplace_back();
    text.push_back(
        std::string(e->is_union() ? "union " : "enum ") + str(e->name()) +
        (e->is_union() ? "" : std::string(" : ") + scalar_name(e->underlying_type()->base_type())) +
        (doc(e->documentation()).empty() ? "" : " — " + doc(e->documentation())));
    for (std::string& l : table.lines(2)) text.push_back(std::move(l));
  }
  j["types"] = std::move(types);
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    for (const std::string& l : text) std::cout << l << "\n";
  }
  return 0;
}

}  // namespace inspect
