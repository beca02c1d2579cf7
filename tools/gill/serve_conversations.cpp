#include "serve_conversations.h"

#include <algorithm>

namespace gill::cli::serve {

std::shared_ptr<Conversation> Conversations::find_or_add(const std::string& id, const std::function<Chat()>& make,
                                                         bool& created) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : lru_)
      if (c->id == id) {
        created = false;
        return c;
      }
  }
  // A new Chat is made outside the lock (it allocates); only one request makes turns at a time, so no other
  // request adds the same id meanwhile.
  auto c = std::make_shared<Conversation>(id, make());
  std::lock_guard<std::mutex> lock(mu_);
  lru_.push_front(c);
  created = true;
  return c;
}

Conversations::Settled Conversations::settle(const std::shared_ptr<Conversation>& c) {
  const int64_t bytes = c->chat.cache_bytes();
  Settled s;
  std::lock_guard<std::mutex> lock(mu_);
  const auto at = std::find(lru_.begin(), lru_.end(), c);
  if (at == lru_.end()) {  // erased while its turn ran
    s.kept = false;
    return s;
  }
  c->bytes = bytes;
  lru_.splice(lru_.begin(), lru_, at);
  auto total = [this] {
    int64_t t = 0;
    for (const auto& x : lru_) t += x->bytes;
    return t;
  };
  while (lru_.size() > 1 && (static_cast<int>(lru_.size()) > max_count_ || total() > max_bytes_)) {
    s.evicted.push_back(lru_.back()->id);
    lru_.pop_back();
  }
  if (c->bytes > max_bytes_) {
    lru_.remove(c);
    s.kept = false;
  }
  return s;
}

bool Conversations::erase(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto at = std::find_if(lru_.begin(), lru_.end(), [&](const auto& c) { return c->id == id; });
  if (at == lru_.end()) return false;
  lru_.erase(at);
  return true;
}

int Conversations::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(lru_.size());
}

int64_t Conversations::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t t = 0;
  for (const auto& x : lru_) t += x->bytes;
  return t;
}

bool valid_conversation_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char ch : id)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
          ch == '-'))
      return false;
  return true;
}

}  // namespace gill::cli::serve
