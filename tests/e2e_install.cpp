// `cmake --install` into a temporary prefix, then the consumer project in examples/hello_gill is configured with
// find_package(gill), built and run; the same program is also built with pkg-config's flags. (~1 min.) Both use the
// compiler gill was built with: a sanitizer build's libgill.a needs that compiler's sanitizer runtime.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace gill::test {
namespace {

namespace fs = std::filesystem;

struct ShResult {
  int code = -1;
  std::string out;
};

std::string q(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

ShResult sh(const std::string& cmd, const fs::path& log) {
  const int st = std::system((cmd + " >" + q(log.string()) + " 2>&1").c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, ss.str()};
}

TEST(Install, FindPackageAndPkgConfigConsumersBuildAndRun) {
  const fs::path tmp = temp_dir("install");
  const fs::path prefix = tmp / "prefix", log = tmp / "log";
  ShResult r = sh("cmake --install " + q(GILL_BINARY_DIR) + " --prefix " + q(prefix.string()), log);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"include/gill/gill.h", "include/gill/error.h", "include/gill/image.h", "include/gill/version.h",
                        "lib/libgill.a", "lib/cmake/gill/gillConfig.cmake", "lib/cmake/gill/gillConfigVersion.cmake",
                        "lib/cmake/gill/gillTargets.cmake", "lib/pkgconfig/gill.pc", "bin/gill"})
    EXPECT_TRUE(fs::exists(prefix / f)) << f;
  // The public header does not pull in torch.
  std::ifstream h(prefix / "include/gill/gill.h");
  std::stringstream hs;
  hs << h.rdbuf();
  EXPECT_EQ(hs.str().find("#include <torch"), std::string::npos);

  // CMake consumer.
  const fs::path build = tmp / "build";
  r = sh("cmake -S " + q((source_dir() / "examples/hello_gill").string()) + " -B " + q(build.string()) +
             " -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=" + q(GILL_CXX_COMPILER) + " -DCMAKE_PREFIX_PATH=" + q(prefix.string()) + " && cmake --build " +
             q(build.string()),
         log);
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(q((build / "hello_gill").string()), log);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("gill 0.", 0), 0u) << r.out;
  // A real call through the library: a missing weights folder is a gill::Error naming it.
  r = sh(q((build / "hello_gill").string()) + " /nonexistent-weights 'a cat'", log);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error (not found): EngineOptions.weights_root: /nonexistent-weights: no such file or folder"),
            std::string::npos)
      << r.out;

  // pkg-config consumer.
  r = sh("PKG_CONFIG_PATH=" + q((prefix / "lib/pkgconfig").string()) + " " + q(GILL_CXX_COMPILER) + " -o " + q((tmp / "hello_pc").string()) +
             " " + q((source_dir() / "examples/hello_gill/main.cpp").string()) + " $(PKG_CONFIG_PATH=" +
             q((prefix / "lib/pkgconfig").string()) + " pkg-config --cflags --libs gill)",
         log);
  ASSERT_EQ(r.code, 0) << r.out;
  r = sh(q((tmp / "hello_pc").string()), log);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("gill 0.", 0), 0u) << r.out;
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace gill::test
