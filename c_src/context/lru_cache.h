// A small least-recently-used map from strings to move-only values.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace ep {

// Not thread-safe: each owner (a context thread) has its own. Lookups take a
// string_view so a hit never copies the key.
template <class V>
class LruCache {
public:
    explicit LruCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    LruCache(const LruCache&) = delete;
    LruCache& operator=(const LruCache&) = delete;

    V* find(std::string_view key) {
        auto it = index_.find(key);
        if (it == index_.end()) return nullptr;
        items_.splice(items_.begin(), items_, it->second);
        return &it->second->second;
    }

    V& insert(std::string key, V value) {
        if (auto* existing = find(key)) {
            *existing = std::move(value);
            return *existing;
        }
        items_.emplace_front(std::move(key), std::move(value));
        index_.emplace(std::string_view(items_.front().first), items_.begin());
        while (items_.size() > capacity_) {
            index_.erase(std::string_view(items_.back().first));
            items_.pop_back();
        }
        return items_.front().second;
    }

    void clear() {
        index_.clear();
        items_.clear();
    }
    std::size_t size() const { return items_.size(); }
    std::size_t capacity() const { return capacity_; }

private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using Items = std::list<std::pair<std::string, V>>;

    std::size_t capacity_;
    Items items_;  // front = most recently used; nodes never move, so views stay valid
    std::unordered_map<std::string_view, typename Items::iterator, Hash, std::equal_to<>> index_;
};

}  // namespace ep
