// hello_gill WEIGHTS_ROOT "prompt": one generate() through the public API; prints the text and the decisions
// and saves generated images as out-K.png. Without arguments it prints the library version.
#include <gill/gill.h>

#include <iostream>

int main(int argc, char** argv) {
  std::cout << "gill " << gill::version() << "\n";
  if (argc < 3) return 0;
  try {
    gill::EngineOptions eo;
    eo.weights_root = argv[1];
    gill::Engine engine(eo);
    gill::Result r = engine.generate({gill::Segment::Text(argv[2])});
    std::cout << r.text << "\n";
    for (size_t k = 0; k < r.images.size(); ++k) {
      std::cout << "[IMG] " << r.images[k].decision << "\n";
      if (r.images[k].generated) gill::write_png(*r.images[k].generated, "out-" + std::to_string(k) + ".png");
    }
  } catch (const gill::Error& e) {
    std::cerr << "error (" << gill::error_code_name(e.code()) << "): " << e.what() << "\n";
    return 1;
  }
  return 0;
}
