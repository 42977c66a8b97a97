// The tutorial's page: connects to the broker that served it (ws:// or wss://, same host and
// port), subscribes, lists what arrives and publishes what is typed. Query string: lib=paho
// (Paho JavaScript, default) or lib=mqttjs (MQTT.js); sub and pub name the two topics.
"use strict";

(function () {
  var params = new URLSearchParams(location.search);
  var lib = params.get("lib") || "paho";
  var subTopic = params.get("sub") || "maison/salon/temperature";
  var pubTopic = params.get("pub") || "maison/salon/consigne";
  var secure = location.protocol === "https:";
  var clientId = "page-" + lib + "-" + Math.random().toString(16).slice(2, 10);

  function status(text) {
    document.getElementById("status").textContent = text;
  }

  function show(topic, payload) {
    var item = document.createElement("li");
    item.textContent = topic + " : " + payload;
    document.getElementById("messages").appendChild(item);
  }

  function startPaho() {
    var client = new Paho.Client(location.hostname, Number(location.port), "/mqtt", clientId);
    client.onConnectionLost = function (res) { status("connexion perdue : " + res.errorMessage); };
    client.onMessageArrived = function (msg) { show(msg.destinationName, msg.payloadString); };
    client.connect({
      useSSL: secure,
      timeout: 10,
      onSuccess: function () {
        status("connecté");
        client.subscribe(subTopic, {
          onSuccess: function () { status("abonné"); },
          onFailure: function (res) { status("abonnement refusé : " + res.errorCode); },
        });
      },
      onFailure: function (res) { status("échec de connexion : " + res.errorMessage); },
    });
    return function (text) {
      var msg = new Paho.Message(text);
      msg.destinationName = pubTopic;
      client.send(msg);
    };
  }

  function startMqttJs() {
    var url = (secure ? "wss://" : "ws://") + location.host + "/mqtt";
    var client = mqtt.connect(url, { clientId: clientId, reconnectPeriod: 0, connectTimeout: 10000 });
    var failed = false;
    client.on("connect", function () {
      status("connecté");
      client.subscribe(subTopic, function (err) {
        status(err ? "abonnement refusé : " + err.message : "abonné");
      });
    });
    client.on("message", function (topic, payload) { show(topic, payload.toString()); });
    client.on("error", function (err) { failed = true; status("erreur : " + err.message); });
    // An error's text stays on the page rather than the plain close that follows it.
    client.on("close", function () { if (!failed) status("connexion perdue"); });
    return function (text) { client.publish(pubTopic, text); };
  }

  var send = lib === "mqttjs" ? startMqttJs() : startPaho();
  document.getElementById("send").addEventListener("click", function () {
    var input = document.getElementById("outgoing");
    send(input.value);
    input.value = "";
  });
})();
