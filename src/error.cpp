#include "shmbus/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace shmbus {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::InvalidName:
      return "invalid_name";
    case Errc::NoSuchBus:
      return "no_such_bus";
    case Errc::NoSuchTopic:
      return "no_such_topic";
    case Errc::ForeignSegment:
      return "foreign_segment";
    case Errc::VersionMismatch:
      return "version_mismatch";
    case Errc::TruncatedSegment:
      return "truncated_segment";
    case Errc::TopicMismatch:
      return "topic_mismatch";
    case Errc::TypeMismatch:
      return "type_mismatch";
    case Errc::SchemaMismatch:
      return "schema_mismatch";
    case Errc::ProducerExists:
      return "producer_exists";
    case Errc::ConsumerTableFull:
      return "consumer_table_full";
    case Errc::DirectoryFull:
      return "directory_full";
    case Errc::UnknownType:
      return "unknown_type";
    case Errc::InvalidJson:
      return "invalid_json";
    case Errc::InvalidMessage:
      return "invalid_message";
    case Errc::InvalidArgument:
      return "invalid_argument";
    case Errc::Timeout:
      return "timeout";
    case Errc::SystemError:
      return "system_error";
    case Errc::PermissionDenied:
      return "permission_denied";
    case Errc::NoSpace:
      return "no_space";
  }
  return "unknown_error";
}

std::string_view to_string(PublishResult r) noexcept {
  switch (r) {
    case PublishResult::Ok:
      return "ok";
    case PublishResult::TooLarge:
      return "too_large";
    case PublishResult::WouldBlock:
      return "would_block";
    case PublishResult::Timeout:
      return "timeout";
    case PublishResult::Invalid:
      return "invalid";
  }
  return "unknown";
}

namespace detail {
void contract_violation(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "shmbus: contract violated: %s (%s:%d)\n", what, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace shmbus
