using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace RsCapRet.Core.Configuration;

/// <summary>
/// The one way settings are read: options classes whose properties carry <see cref="EnvironmentVariableAttribute"/>,
/// bound from configuration (the environment-variable provider: keys are the variables' exact names). A bad value is
/// one message "VARIABLE: must be ..., got '...'"; the CLI and the web host check every options class at start.
/// </summary>
public static class EnvironmentSettings
{
    /// <summary>The process environment as configuration (read now: later changes need a new one).</summary>
    public static IConfiguration FromEnvironment() => new ConfigurationBuilder().AddEnvironmentVariables().Build();

    /// <summary><typeparamref name="T"/> bound from the process environment; a <see cref="SettingsException"/> listing every bad value.</summary>
    public static T Load<T>() where T : new() => Load<T>(FromEnvironment());

    public static T Load<T>(IConfiguration configuration) where T : new()
    {
        var options = new T();
        var problems = BindInto(options, configuration);
        if (options is IChecksSettings checks) problems.AddRange(checks.Problems());
        return problems.Count == 0 ? options : throw new SettingsException(problems);
    }

    /// <summary>Sets each bound property whose variable has a value; returns the bad values' messages (those properties keep their defaults).</summary>
    public static List<string> BindInto(object options, IConfiguration configuration)
    {
        var problems = new List<string>();
        foreach (var (property, variable) in BoundProperties(options.GetType()))
        {
            var text = configuration[variable.Name];
            if (string.IsNullOrWhiteSpace(text)) continue;
            if (Parse(property.PropertyType, variable, text, out var value) is { } problem) problems.Add(problem);
            else property.SetValue(options, value);
        }
        return problems;
    }

    /// <summary>Every problem of <paramref name="optionTypes"/> in <paramref name="configuration"/>, one message per bad value.</summary>
    public static IReadOnlyList<string> Problems(IConfiguration configuration, IEnumerable<Type> optionTypes)
    {
        var problems = new List<string>();
        foreach (var type in optionTypes)
        {
            var options = Activator.CreateInstance(type)!;
            problems.AddRange(BindInto(options, configuration));
            if (options is IChecksSettings checks) problems.AddRange(checks.Problems());
        }
        return problems.Distinct().ToList();
    }

    /// <summary>The properties of <paramref name="type"/> bound to a variable.</summary>
    public static IEnumerable<(PropertyInfo Property, EnvironmentVariableAttribute Variable)> BoundProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (p, p.GetCustomAttribute<EnvironmentVariableAttribute>()))
            .Where(x => x.Item2 is not null)
            .Select(x => (x.p, x.Item2!));

    /// <summary>The options classes of <paramref name="assemblies"/> (types with at least one bound property).</summary>
    public static IEnumerable<Type> OptionTypes(IEnumerable<Assembly> assemblies) =>
        assemblies.SelectMany(a => a.GetTypes()).Where(t => t.IsClass && !t.IsAbstract && BoundProperties(t).Any());

    private static string? Parse(Type type, EnvironmentVariableAttribute variable, string text, out object? value)
    {
        value = null;
        var trimmed = text.Trim();
        var target = Nullable.GetUnderlyingType(type) ?? type;
        switch (variable.Rule)
        {
            case SettingRule.Flag:
                if (trimmed is not ("0" or "1")) return $"{variable.Name}: must be 1 (on) or 0 (off), got '{text}'";
                value = trimmed == "1";
                return null;
            case SettingRule.PositiveInteger or SettingRule.NonNegativeInteger:
                var least = variable.Rule == SettingRule.PositiveInteger ? 1 : 0;
                var kind = least == 1 ? "a positive integer" : "an integer, 0 or more";
                if (!long.TryParse(trimmed, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) || number < least)
                    return $"{variable.Name}: must be {kind}, got '{text}'";
                if (target == typeof(int) && number > int.MaxValue) return $"{variable.Name}: must be at most {int.MaxValue}, got '{text}'";
                value = target == typeof(int) ? (object)(int)number : number;
                return null;
            default:
                if (target != typeof(string)) throw new InvalidOperationException($"{variable.Name}: a text setting must be a string property");
                value = text;
                return null;
        }
    }
}

/// <summary>Bad settings: <see cref="Problems"/> holds one message per bad value ("VARIABLE: problem").</summary>
public sealed class SettingsException(IReadOnlyList<string> problems) : Exception(string.Join(Environment.NewLine, problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
