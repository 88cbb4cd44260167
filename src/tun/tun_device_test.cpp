#include <gtest/gtest.h>

#include "tun_device.h"
