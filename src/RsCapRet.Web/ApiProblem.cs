using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;

namespace RsCapRet.Web;

/// <summary>
/// The body of every error the host answers: RFC 9457 problem details (application/problem+json) — type, title (the
/// status's reason phrase), status, detail (the message) — and the message once more as "error", the member clients
/// and the map page read since before problem details. Nothing else: no exception, no stack trace, no server path.
/// </summary>
public static class ApiProblem
{
    public const string ContentType = "application/problem+json";

    /// <summary>The member that kept the message before problem details (<c>{"error": "..."}</c>).</summary>
    public const string ErrorMember = "error";

    /// <summary>An error answer with <paramref name="status"/> and <paramref name="message"/>, as an endpoint returns it.</summary>
    public static ProblemHttpResult Result(int status, string message) => TypedResults.Problem(Details(status, message));

    public static ProblemHttpResult BadRequest(string message) => Result(StatusCodes.Status400BadRequest, message);

    public static ProblemHttpResult NotFound(string message) => Result(StatusCodes.Status404NotFound, message);

    /// <summary>The same answer written by middleware (status code included).</summary>
    public static Task WriteAsync(HttpContext http, int status, string message) => Result(status, message).ExecuteAsync(http);

    public static ProblemDetails Details(int status, string message) => new()
    {
        Status = status,
        Title = ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : $"HTTP {status}",
        Detail = message,
        Extensions = { [ErrorMember] = message },
    };
}
