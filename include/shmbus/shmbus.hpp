// shmbus — the whole public API in one include.
#pragma once

#include "shmbus/bus.hpp"
#include "shmbus/clock.hpp"
#include "shmbus/dispatcher.hpp"
#include "shmbus/error.hpp"
#include "shmbus/inspect.hpp"
#include "shmbus/message.hpp"
#include "shmbus/options.hpp"
#include "shmbus/publisher.hpp"
#include "shmbus/rpc.hpp"
#include "shmbus/schema.hpp"
#include "shmbus/subscriber.hpp"
#include "shmbus/topic.hpp"
