#include "optim/json_fields.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kiln::optim {

void check_object(const nlohmann::json& object, std::string_view where) {
  KILN_CHECK(object.is_object(), where, ": expected a json object, got ", object.type_name(), " ",
             object.dump());
}

const nlohmann::json& json_field(const nlohmann::json& object, std::string_view name,
                                 std::string_view where) {
  check_object(object, where);
  const auto found = object.find(name);
  KILN_CHECK(found != object.end(), where, ": field '", name, "' is missing");
  return *found;
}

double number_field(const nlohmann::json& object, std::string_view name, std::string_view where) {
  const nlohmann::json& value = json_field(object, name, where);
  KILN_CHECK(value.is_number(), where, ": field '", name, "' should be a number, got ", value.dump());
  return value.get<double>();
}

std::int64_t integer_field(const nlohmann::json& object, std::string_view name, std::string_view where) {
  const nlohmann::json& value = json_field(object, name, where);
  KILN_CHECK(value.is_number_integer(), where, ": field '", name, "' should be an integer, got ",
             value.dump());
  return value.get<std::int64_t>();
}

bool bool_field(const nlohmann::json& object, std::string_view name, std::string_view where) {
  const nlohmann::json& value = json_field(object, name, where);
  KILN_CHECK(value.is_boolean(), where, ": field '", name, "' should be true or false, got ", value.dump());
  return value.get<bool>();
}

std::string string_field(const nlohmann::json& object, std::string_view name, std::string_view where) {
  const nlohmann::json& value = json_field(object, name, where);
  KILN_CHECK(value.is_string(), where, ": field '", name, "' should be a string, got ", value.dump());
  return value.get<std::string>();
}

void reject_unknown_fields(const nlohmann::json& object, const std::vector<std::string_view>& known,
                           std::string_view where) {
  check_object(object, where);
  for (const auto& [name, value] : object.items()) {
    KILN_CHECK(std::find(known.begin(), known.end(), name) != known.end(), where, ": unknown field '", name,
               "'");
  }
}

}  // namespace kiln::optim
