#include "broker/message.h"

#include <cstring>
#include <new>

namespace midge::broker {

MessagePtr Message::create(const MessageFields& f) {
  const size_t bytes = f.topic.size() + f.payload.size() + f.pass_through.size() + f.origin_client_id.size();
  void* block = ::operator new(sizeof(Message) + bytes);
  auto* m = new (block) Message();
  char* w = static_cast<char*>(block) + sizeof(Message);
  auto place = [&w](std::string_view s) {
    if (!s.empty()) std::memcpy(w, s.data(), s.size());
    std::string_view placed(w, s.size());
    w += s.size();
    return placed;
  };
  m->topic = place(f.topic);
  m->payload = place(f.payload);
  m->pass_through = place(f.pass_through);
  m->origin_client_id = place(f.origin_client_id);
  m->qos = f.qos;
  m->retain = f.retain;
  m->expires_at = f.expires_at;
  return MessagePtr(m);
}

void Message::destroy(Message* m) {
  m->~Message();
  ::operator delete(m);
}

}  // namespace midge::broker
