// The live conversations of `gill serve` (a request's conversation_id): each one a gill::Chat that keeps its KV
// cache between requests. At most max_count of them are kept, and their caches take at most max_bytes together;
// beyond either bound the least recently used conversation is dropped (a later request with its id starts a new
// one, and says so with turn 1). The list is thread-safe; a Chat itself is only used under the server's model
// lock (one turn at a time).
#pragma once
#include <gill/gill.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gill::cli::serve {

struct Conversation {
  Conversation(std::string id_, Chat chat_) : id(std::move(id_)), chat(std::move(chat_)) {}
  std::string id;
  Chat chat;
  int64_t bytes = 0;  // chat.cache_bytes() after its last turn
};

class Conversations {
 public:
  Conversations(int max_count, int64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}
  // The conversation `id`; a new one from make() when there is none (created = true).
  std::shared_ptr<Conversation> find_or_add(const std::string& id, const std::function<Chat()>& make, bool& created);
  struct Settled {
    bool kept = true;                  // false: this conversation alone is over the memory bound (dropped)
    std::vector<std::string> evicted;  // the other conversations dropped to make room
  };
  // After a turn of `c`: records its cache size, makes it the most recent and drops the least recent ones until
  // both bounds hold.
  Settled settle(const std::shared_ptr<Conversation>& c);
  bool erase(const std::string& id);
  int count() const;
  int64_t bytes() const;
  int max_count() const { return max_count_; }
  int64_t max_bytes() const { return max_bytes_; }

 private:
  mutable std::mutex mu_;
  std::list<std::shared_ptr<Conversation>> lru_;  // front: most recently used
  int max_count_;
  int64_t max_bytes_;
};

// A conversation id: 1 to 64 characters of [A-Za-z0-9._-].
bool valid_conversation_id(const std::string& id);

}  // namespace gill::cli::serve
