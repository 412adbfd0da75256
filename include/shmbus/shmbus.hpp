// shmbus — the whole public API in one include, layer by layer.
#pragma once

#include "shmbus/error.hpp"

// schema: message types, binary schemas, verification, JSON
#include "shmbus/schema/json_codec.hpp"
#include "shmbus/schema/registry.hpp"
#include "shmbus/schema/verifier.hpp"

// core: buses, topics, publishing and subscribing
#include "shmbus/core/bus.hpp"
#include "shmbus/core/clock.hpp"
#include "shmbus/core/message.hpp"
#include "shmbus/core/message_template.hpp"
#include "shmbus/core/message_writer.hpp"
#include "shmbus/core/options.hpp"
#include "shmbus/core/publisher.hpp"
#include "shmbus/core/subscriber.hpp"
#include "shmbus/core/topic.hpp"

// patterns: handler registration and request/reply
#include "shmbus/patterns/dispatcher.hpp"
#include "shmbus/patterns/rpc.hpp"

// admin: what tools and bridges show and do (snapshots, rates, the JSON
// envelope, encodings, garbage collection, latency histograms)
#include "shmbus/admin/bus_view.hpp"
#include "shmbus/admin/encoding.hpp"
#include "shmbus/admin/envelope.hpp"
#include "shmbus/admin/gc.hpp"
#include "shmbus/admin/histogram.hpp"
#include "shmbus/admin/snapshot.hpp"
