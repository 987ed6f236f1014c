// What the Modelyard nodes' editor pages (nodes/*.html) share: registering a config node or a
// node that calls a model, the rows of their edit forms, and filling a drop-down from one of the
// runtime's admin endpoints. Node-RED (>= 1.3) serves this file at
// resources/@modelyard/node-red-modelyard/editor.js; each .html loads it before its own scripts.
(function () {
  "use strict";

  /** Return the HTML of `tag` with `attrs` (name: value, in order) and, unless void, `inner`. */
  function element(tag, attrs, inner) {
    var html = "<" + tag;
    Object.keys(attrs).forEach(function (name) {
      html += " " + name + '="' + $("<div>").text(String(attrs[name])).html().replace(/"/g, "&quot;") + '"';
    });
    return inner === undefined ? html + " />" : html + ">" + inner + "</" + tag + ">";
  }

  /** Return a form row: the label of the field `id` (a Font Awesome `icon` and `text`), then `controls`. */
  function row(id, icon, text, controls) {
    return (
      '<div class="form-row">' +
      element("label", { for: id }, element("i", { class: "fa fa-" + icon }, "") + " " + text) +
      controls +
      "</div>"
    );
  }

  /** Return a row with a text input `id` (`attrs` adds to or overrides its attributes). */
  function inputRow(id, icon, text, attrs) {
    return row(id, icon, text, element("input", $.extend({ type: "text", id: id }, attrs)));
  }

  /**
   * Return a row with a drop-down `id`: `options.choices` its [value, text] options,
   * `options.style` its style, `options.refresh` the id of a refresh button after it.
   */
  function selectRow(id, icon, text, options) {
    var attrs = options.style ? { id: id, style: options.style } : { id: id };
    var choices = (options.choices || [])
      .map(function (choice) {
        return element("option", { value: choice[0] }, $("<div>").text(choice[1]).html());
      })
      .join("");
    var refresh = options.refresh
      ? element("a", { id: options.refresh, class: "red-ui-button" }, element("i", { class: "fa fa-refresh" }, ""))
      : "";
    return row(id, icon, text, element("select", attrs, choices) + refresh);
  }

  /** Return the Name row of a node's form (`prefix`: node-input- or node-config-input-). */
  function nameRow(prefix) {
    return inputRow(prefix + "name", "tag", "Name");
  }

  /** Return the Timeout row of a calling node's form. */
  function timeoutRow() {
    return inputRow("node-input-timeout", "clock-o", "Timeout (s)", { style: "width: 80px" });
  }

  /** Return the line under a form where a drop-down's loading says how it went. */
  function statusTips(id) {
    return element("div", { class: "form-tips", id: id }, "");
  }

  /** Define the edit form of node `type` from its `rows` (as a .html's template script would). */
  function template(type, rows) {
    $('<script type="text/html">')
      .attr("data-template-name", type)
      .text(rows.join("\n"))
      .appendTo("#red-ui-editor-node-configs");
  }

  /** Register a config node that holds a service's URL (`defaultUrl` unless set) and a name. */
  function registerConfigNode(type, defaultUrl, more) {
    RED.nodes.registerType(
      type,
      $.extend(
        {
          category: "config",
          defaults: {
            name: { value: "" },
            url: { value: defaultUrl, required: true, validate: RED.validators.regex(/^https?:\/\/.+/) },
          },
          label: function () {
            return this.name || this.url;
          },
        },
        more,
      ),
    );
  }

  /**
   * Register a node with one input and one output that calls a model through the config node
   * `definition.configType` (its field `definition.configField`). Its defaults: the Name, the
   * config node, `definition.defaults`, then the Timeout (`definition.timeoutS` seconds unless
   * set). Its label: the Name, else `definition.describe()` (of the node), else its palette label.
   * Editing it runs `definition.prepare(node)` (when given), then `definition.reload(node)` (which
   * fills its drop-downs) whenever the config node changes or its `<type>-refresh` button is clicked.
   */
  function registerCallNode(type, definition) {
    var defaults = { name: { value: "" } };
    defaults[definition.configField] = { value: "", type: definition.configType, required: true };
    $.extend(defaults, definition.defaults, {
      timeout: { value: definition.timeoutS, validate: RED.validators.number() },
    });
    RED.nodes.registerType(type, {
      category: "Modelyard",
      color: definition.color,
      defaults: defaults,
      inputs: 1,
      outputs: 1,
      icon: definition.icon,
      paletteLabel: definition.paletteLabel,
      label: function () {
        return this.name || definition.describe.call(this) || definition.paletteLabel;
      },
      oneditprepare: function () {
        var node = this;
        if (definition.prepare) {
          definition.prepare(node);
        }
        reloadOn("#node-input-" + definition.configField, "#" + type + "-refresh", function () {
          definition.reload(node);
        });
      },
    });
  }

  /**
   * Ask the runtime for what fills a drop-down: `$status` says it is loading, then the error, if
   * `request()` (a jQuery ajax call) fails; `done(data)` is called with its answer.
   */
  function load($status, request, done) {
    $status.text("loading…");
    request()
      .done(done)
      .fail(function (xhr) {
        var error = (xhr.responseJSON && xhr.responseJSON.error) || xhr.statusText;
        $status.text(error);
      });
  }

  /**
   * Fill the drop-down `$select`: first the empty choice `emptyText`, then `choices` ([value,
   * text]); a `current` value none of them has stays as one more choice (its text + `missing`).
   * Select `current`, or the empty choice.
   */
  function fillSelect($select, emptyText, choices, current, missing) {
    $select.empty();
    $("<option>").val("").text(emptyText).appendTo($select);
    var values = choices.map(function (choice) {
      $("<option>").val(choice[0]).text(choice[1]).appendTo($select);
      return choice[0];
    });
    if (current && values.indexOf(current) < 0) {
      $("<option>").val(current).text(current + missing).appendTo($select);
    }
    $select.val(current || "");
  }

  /** Call `reload()` whenever the config node field `configInput` changes or `refreshButton` is clicked. */
  function reloadOn(configInput, refreshButton, reload) {
    $(configInput).on("change", function () {
      reload();
    });
    $(refreshButton).on("click", function () {
      reload();
    });
  }

  window.modelyardEditor = {
    row: row,
    inputRow: inputRow,
    selectRow: selectRow,
    nameRow: nameRow,
    timeoutRow: timeoutRow,
    statusTips: statusTips,
    template: template,
    registerConfigNode: registerConfigNode,
    registerCallNode: registerCallNode,
    load: load,
    fillSelect: fillSelect,
    reloadOn: reloadOn,
  };
})();
