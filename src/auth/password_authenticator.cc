#include "auth/password_authenticator.h"

namespace midge::auth {

using protocol::ReasonCode;

PasswordAuthenticator::PasswordAuthenticator(std::shared_ptr<const PasswordFile> users, Limits limits)
    : users_(std::move(users)), pool_(limits.threads, limits.max_queued) {}

void PasswordAuthenticator::replace(std::shared_ptr<const PasswordFile> users) {
  users_.store(std::move(users), std::memory_order_release);
}

// Mosquitto's rule: a named client without a password never matches, and
// an empty password counts as none (Mosquitto reads a zero-length field as
// absent), even for a user whose hash is that of the empty password.
std::optional<ReasonCode> PasswordAuthenticator::authenticate(broker::Credentials who, Reply reply) {
  if (!who.password || who.password->empty()) return ReasonCode::kNotAuthorized;
  std::shared_ptr<const PasswordFile> users = users_.load(std::memory_order_acquire);
  if (users->remembered(who.username, *who.password)) return ReasonCode::kSuccess;
  const bool queued = pool_.try_post([users, who = std::move(who), reply = std::move(reply)] {
    if (!reply.wanted()) return;
    reply.answer(users->verify(who.username, *who.password) ? ReasonCode::kSuccess : ReasonCode::kNotAuthorized);
  });
  if (!queued) return ReasonCode::kServerBusy;
  return std::nullopt;
}

}  // namespace midge::auth
