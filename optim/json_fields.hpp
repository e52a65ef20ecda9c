// Checked reads from the json that stores optimizer states and schedules in a checkpoint.
//
// A checkpoint may come from another version of kiln or be edited by hand, so every read says which
// field is missing or has the wrong type, after a `where` that names the object ("schedule 'cosine'",
// "sgd load_state").
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <string_view>
#include <vector>

namespace kiln::optim {

// Throws unless `object` is a json object.
void check_object(const nlohmann::json& object, std::string_view where);
// The field `name` of `object`, which must be present.
const nlohmann::json& json_field(const nlohmann::json& object, std::string_view name, std::string_view where);
double number_field(const nlohmann::json& object, std::string_view name, std::string_view where);
std::int64_t integer_field(const nlohmann::json& object, std::string_view name, std::string_view where);
bool bool_field(const nlohmann::json& object, std::string_view name, std::string_view where);
std::string string_field(const nlohmann::json& object, std::string_view name, std::string_view where);
// Throws naming the first field of `object` that is not in `known`, so a misspelt field is not ignored.
void reject_unknown_fields(const nlohmann::json& object, const std::vector<std::string_view>& known,
                           std::string_view where);

}  // namespace kiln::optim
