#include <gtest/gtest.h>

#include "offload.h"
